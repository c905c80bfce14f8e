"""The real cluster client and the tests' fake both implement meshreg.cluster.api.ClusterClient."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest

from meshreg.cluster.api import ClusterClient
from meshreg.cluster.client import Cluster
from support.fakes import FakeCluster

METHODS = sorted(name for name, member in vars(ClusterClient).items()
                 if callable(member) and not name.startswith("_"))
IMPLEMENTATIONS = [pytest.param(lambda: Cluster(None, server="https://127.0.0.1:6443"), id="Cluster"),
                   pytest.param(FakeCluster, id="FakeCluster")]


@pytest.mark.parametrize("make", IMPLEMENTATIONS)
def test_it_is_a_cluster_client(make: Callable[[], object]) -> None:
    assert isinstance(make(), ClusterClient)


@pytest.mark.parametrize("implementation", [Cluster, FakeCluster])
@pytest.mark.parametrize("method", METHODS)
def test_each_method_takes_the_protocols_arguments(implementation: type, method: str) -> None:
    """Same names, same kinds (positional or keyword-only), defaults where the Protocol has them, and nothing
    more that a caller of the Protocol would have to pass."""
    wanted = inspect.signature(getattr(ClusterClient, method)).parameters
    given = inspect.signature(getattr(implementation, method)).parameters
    for name, parameter in wanted.items():
        assert name in given, f"{implementation.__name__}.{method} lacks {name}"
        assert given[name].kind == parameter.kind, f"{implementation.__name__}.{method}: {name} is {given[name].kind}"
        has_default = given[name].default is not inspect.Parameter.empty
        assert has_default == (parameter.default is not inspect.Parameter.empty), f"{method}: default of {name}"
    extra = [p for n, p in given.items() if n not in wanted and p.default is inspect.Parameter.empty
             and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    assert not extra, f"{implementation.__name__}.{method} requires {extra}"


def test_the_methods_checked_are_the_protocols() -> None:
    assert {"apply", "delete", "get", "list"} <= set(METHODS)  # read from the Protocol, not an empty list
