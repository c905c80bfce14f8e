"""End-to-end fixtures: one lab per config for the whole session, on loopback, stopped afterwards."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from lab import images
from lab.mesh import Lab
from lab.processes import missing_parts

from e2e_cases import WITH_DELETE, WITHOUT_DELETE
from push_cases import WITH_PUSH_PROXY

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


def _lab(tmp_path_factory, text: str, name: str):
    lab = Lab(text, tmp_path_factory.mktemp(name))
    try:
        yield lab
    finally:
        lab.close()


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
