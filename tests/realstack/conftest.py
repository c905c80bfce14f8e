"""The real-stack tier: every test here runs on a real kubelet node with a real istiod and real sidecars, and skips,
saying how to start the stack, where it is not running (CI has none)."""

from __future__ import annotations

import pathlib

import pytest

from support import realstack

HERE = pathlib.Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.realstack)


@pytest.fixture(scope="session")
def stack() -> realstack.Stack:
    """The running stack, swept once of what an interrupted earlier run of the tier left behind."""
    found, why = realstack.find()
    if found is None:
        pytest.skip(f"the real stack is not running: {why}")
    realstack.sweep(found)
    return found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, request) -> pathlib.Path:
    """A directory of the module's own (its meshreg.yaml, certificates, images)."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
