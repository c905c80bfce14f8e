"""`meshreg connect` when the API server its port-forward goes through is killed mid-push and started again: a
private kube-apiserver of the lab (support/privateapi.py: the lab's binary and flags, on the lab's etcd, so its
port-forwards reach the real node's pods) carries connect's port-forward; a 1 GiB layer is pushed with skopeo, the
private API server is SIGKILLed two seconds in and started again. connect either carries on or says clearly what
happened, and the skopeo retry completes. The shared lab API server is never touched. (1 GiB layers, parallel layer
uploads and a replaced push-proxy pod under a real port-forward: test_devloop_transfer.py.)"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import pytest

from support import devloop
from support.privateapi import PrivateApiServer

NAME, NODE_PORT, PUSH_PORT = "fi-cx", 5255, 5256
GIB = 1 << 30
FIGURES = Path("/tmp/meshreg-faults-figures.jsonl")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("fi-cx")


@pytest.fixture(scope="module")
def private(stack, work):
    if not (stack.lab_kube / "bin" / "kube-apiserver").exists():
        pytest.skip(f"no kube-apiserver binary in {stack.lab_kube}/bin (build the API-server lab)")
    server = PrivateApiServer(stack, work)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def inst(stack, work):
    """As devloop.instance, without publishing kube-public/local-registry-hosting (so without its lock)."""
    config = work / "meshreg.yaml"
    config.write_text(devloop.config_text(NAME, node_port=NODE_PORT, push_port=PUSH_PORT,
                                          extra="  localRegistryHosting: {publish: false}\n"))
    found = devloop.Instance(stack, NAME, config, NODE_PORT, PUSH_PORT)
    devloop.wait_gone(stack, NAME, found.push_namespace)
    try:
        devloop._volume(stack, NAME, work / "volume")
        found.meshreg("up", "--timeout", "240")
        yield found
    finally:
        found.meshreg("down", "--purge", "--yes", check=False)
        stack.kubectl("delete", "pv", f"{NAME}-data", "--ignore-not-found", "--wait=false", check=False)


@pytest.mark.apiserver
def test_a_push_survives_the_api_server_under_connect_being_killed_and_restarted(private, inst, work):
    through = dataclasses.replace(inst, stack=dataclasses.replace(inst.stack, kubeconfig=private.kubeconfig))
    layout = work / "big"
    devloop.large_image(layout, (GIB,))
    with devloop.connected(through, workdir=work) as connect:
        result: list = []
        copy = threading.Thread(target=lambda: result.append(devloop.skopeo(
            f"oci:{layout}:latest", f"docker://localhost:{PUSH_PORT}/dev/big:v1", retries=3)))
        copy.start()
        time.sleep(2)
        killed = time.monotonic()
        private.kill()
        time.sleep(3)  # the API server is away for a while (a control-plane node rebooting is longer)
        ready = private.start()
        copy.join()
        [(first, took)] = result
        retried, retry_took = (first, 0.0) if first.returncode == 0 else devloop.skopeo(
            f"oci:{layout}:latest", f"docker://localhost:{PUSH_PORT}/dev/big:v1", retries=3)
        after, after_took = devloop.skopeo(f"oci:{layout}:latest", f"docker://localhost:{PUSH_PORT}/dev/after:v1")
        said = connect.output().splitlines()
        alive = connect.proc.poll() is None
    figure = {"figure": "connect-apiserver-restart", "api_server_away_s": round(3 + ready, 1),
              "first_push_exit": first.returncode, "first_push_s": round(took, 1),
              "first_push_retries": [line for line in first.stderr.splitlines() if "etry" in line][:6],
              "first_push_error": first.stderr.strip().splitlines()[-1:] if first.returncode else [],
              "retry_exit": retried.returncode, "retry_s": round(retry_took, 1),
              "push_after_s": round(after_took, 1), "connect_alive": alive,
              "connect_said": said[6:20], "killed_after_s": round(time.monotonic() - killed, 1)}
    print("FIGURE", json.dumps(figure))
    with FIGURES.open("a") as f:
        f.write(json.dumps(figure) + "\n")
    assert retried.returncode == 0, retried.stderr
    assert after.returncode == 0, after.stderr
    assert alive or any("error" in line for line in said), said
