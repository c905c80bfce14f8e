"""Fixtures for tests of the requests meshreg sends: a local API server, and a Cluster connected to it with the real
kubernetes client. Conftests import them."""

from __future__ import annotations

import threading

import pytest

from meshreg.cluster import client as clusters
from support.apiserver import FakeApiServer, write_kubeconfig


@pytest.fixture
def api():
    server = FakeApiServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def cluster(api, tmp_path):
    url = f"http://127.0.0.1:{api.server_address[1]}"
    return clusters.connect(kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", url))
