"""Shared test options and fixtures."""

from __future__ import annotations

import pathlib

import pytest


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="Rewrite tests/golden/*.yaml from the current renderer instead of comparing.")


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture
def write_config(tmp_path):
    """Write a config document to a temp file and return its path."""

    def write(text: str, name: str = "meshreg.yaml") -> pathlib.Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(autouse=True)
def _own_discovery_cache(tmp_path_factory, monkeypatch):
    """Each test its own kubectl-style discovery cache ($KUBECACHEDIR), so no test sees another's answers."""
    monkeypatch.setenv("KUBECACHEDIR", str(tmp_path_factory.mktemp("kubecache")))
