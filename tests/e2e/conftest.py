"""End-to-end fixtures: one lab per config for the whole session, on loopback, stopped afterwards."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from contextlib import closing

import pytest

from support.e2e_cases import WITH_DELETE, WITHOUT_DELETE
from support.lab import images
from support.lab.mesh import Lab
from support.lab.processes import missing_parts
from support.push_cases import WITH_PUSH_PROXY

HERE = pathlib.Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def real_parts():
    hints = missing_parts()
    if hints:
        pytest.skip("end-to-end tests need real parts; install " + "; ".join(hints))


def _lab(tmp_path_factory, text: str, name: str, *, cls=Lab, **kw):
    """A session fixture's body: a lab of class `cls` for `text`, closed after the last test using it."""
    with closing(cls(text, tmp_path_factory.mktemp(name), **kw)) as lab:
        yield lab


@pytest.fixture(scope="session")
def lab(real_parts, tmp_path_factory):
    """deleteEnabled, an unscoped writer who may delete, a writer scoped to team-a/."""
    yield from _lab(tmp_path_factory, WITH_DELETE, "lab")


@pytest.fixture(scope="session")
def nodelete_lab(real_parts, tmp_path_factory):
    """deleteEnabled false, one unscoped writer."""
    yield from _lab(tmp_path_factory, WITHOUT_DELETE, "nodelete")


@pytest.fixture(scope="session")
def push_lab(real_parts, tmp_path_factory):
    """The lab's writers and deleteEnabled, plus a push proxy scoped to dev/."""
    yield from _lab(tmp_path_factory, WITH_PUSH_PROXY, "push")


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> images.Image:
    """A small image, new content every session (so no registry or skopeo cache already knows its blobs)."""
    return images.build(tmp_path_factory.mktemp("image") / "layout", layer_sizes=(2048, 8192))


MESHREG = [sys.executable, "-m", "meshreg"]  # the meshreg of the interpreter running the tests, PATH or not


@pytest.fixture(scope="session")
def policy_check():
    """`meshreg policy check -o json` as a user runs it: the decision for one identity, method and path."""
    if subprocess.run([*MESHREG, "policy", "--help"], capture_output=True).returncode != 0:
        pytest.skip("meshreg policy check not available")

    def check(config_file, identity: str, method: str, path: str, *flags: str) -> str:
        result = subprocess.run([*MESHREG, "policy", "check", "-c", str(config_file), "--as", identity, *flags,
                                 method, path, "-o", "json"], capture_output=True, text=True)
        assert result.returncode in (0, 3), result.stderr
        decision = json.loads(result.stdout)["decision"]
        assert decision == ("ALLOW" if result.returncode == 0 else "DENY")
        return decision

    return check


def _ingress_setup(lab) -> None:
    """Certificates as `meshreg certs` issues them: loader's, and rotated's after a rotation (the first one revoked)."""
    lab.certs = {"loader": lab.issue("loader"), "revoked": lab.issue("rotated", out=lab.root / "revoked")}
    lab.meshreg("certs", "revoke", "rotated")
    lab.certs["rotated"] = lab.issue("rotated")


def _ingress_lab(tmp_path_factory, *, dedicated: bool, tokens: bool = True):
    from support.ingress_cases import config_text
    from support.lab.ingress import IngressLab

    yield from _lab(tmp_path_factory, config_text(dedicated=dedicated, tokens=tokens), "ingress", cls=IngressLab,
                    setup=_ingress_setup)


@pytest.fixture(scope="session")
def ingress_lab(real_parts, tmp_path_factory):
    """spec.ingress with certificate and token clients, behind an ingress Envoy (OPTIONAL_MUTUAL, jwt_authn) on a
    shared gateway: DENY rules only."""
    yield from _ingress_lab(tmp_path_factory, dedicated=False)


@pytest.fixture(scope="session")
def dedicated_ingress_lab(real_parts, tmp_path_factory):
    """The same clients on a dedicated gateway: the DENY rules and an ALLOW policy."""
    yield from _ingress_lab(tmp_path_factory, dedicated=True)


@pytest.fixture(scope="session")
def mutual_ingress_lab(real_parts, tmp_path_factory):
    """Certificate clients only: the Gateway server is MUTUAL, with no JWT filter and no token challenge."""
    yield from _ingress_lab(tmp_path_factory, dedicated=False, tokens=False)
