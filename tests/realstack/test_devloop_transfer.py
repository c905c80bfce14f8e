"""`meshreg connect` through a REAL port-forward (API server -> the real kubelet -> the push-proxy pod): a 1 GiB
layer each way with bounded memory, parallel layer uploads, nothing running once a client has gone, and a
replaced push-proxy pod followed. The figures are printed (pytest -s shows them)."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from support import devloop

NAME, NODE_PORT, PUSH_PORT = "dl-xfer", 5020, 5021
GIB = 1 << 30
MEMORY_LIMIT_KIB = 100 * 1024  # the target: at most 100 MB resident through a 1 GiB transfer either way


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("transfer")


@pytest.fixture(scope="module")
def inst(stack, work):
    with devloop.instance(stack, NAME, node_port=NODE_PORT, push_port=PUSH_PORT, workdir=work) as found:
        yield found


@pytest.fixture
def connect(inst, work):
    with devloop.connected(inst, workdir=work) as running:
        yield running


@pytest.fixture(scope="module")
def big(work):
    layout = work / "big"
    return layout, devloop.large_image(layout, (GIB,))


def test_a_1_gib_layer_goes_up_and_comes_back_with_connect_under_100_mb(connect, big, work):
    layout, digest = big
    pushed, up = devloop.skopeo(f"oci:{layout}:latest", f"docker://localhost:{PUSH_PORT}/dev/big:v1")
    assert pushed.returncode == 0, pushed.stderr
    after_push = connect.status("VmHWM")
    pulled, down = devloop.skopeo(f"docker://localhost:{PUSH_PORT}/dev/big:v1", f"oci:{work}/back:latest")
    assert pulled.returncode == 0, pulled.stderr
    peak = connect.status("VmHWM")
    print(f"\n1 GiB layer through meshreg connect: push {GIB / up / 1e6:.1f} MB/s ({up:.1f} s), pull "
          f"{GIB / down / 1e6:.1f} MB/s ({down:.1f} s); connect peak resident {after_push / 1024:.0f} MiB after the "
          f"push, {peak / 1024:.0f} MiB after the pull, {connect.cpu_seconds():.1f} s CPU")
    assert peak <= MEMORY_LIMIT_KIB
    assert digest in (work / "back" / "index.json").read_text()


def test_parallel_layer_uploads_and_concurrent_copies_complete(connect, work):
    layouts = [work / f"six-{i}" for i in range(4)]
    images = [devloop.large_image(layout, (32 << 20,) * 6) for layout in layouts]  # six layers each, copied at once
    results: list = [None] * 4

    def copy(i: int) -> None:
        results[i] = devloop.skopeo(f"oci:{layouts[i]}:latest", f"docker://localhost:{PUSH_PORT}/dev/six-{i}:v1")

    start = time.monotonic()
    threads = [threading.Thread(target=copy, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - start
    assert [r.returncode for r, _ in results] == [0, 0, 0, 0], [r.stderr[-500:] for r, _ in results]
    rate = 4 * 6 * 32 / 1.048576 / took
    print(f"\n4 concurrent copies of 6 x 32 MiB layers through meshreg connect: {rate:.1f} MB/s ({took:.1f} s)")
    assert connect.status("VmHWM") <= MEMORY_LIMIT_KIB
    assert all(image.startswith("sha256:") for image in images)


def test_a_client_that_leaves_mid_pull_leaves_connect_idle(connect, big, inst):
    layout, _ = big
    devloop.skopeo(f"oci:{layout}:latest", f"docker://localhost:{PUSH_PORT}/dev/big:v1")  # present already or now
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]).read_text())
    layer = manifest["layers"][0]["digest"]
    client = subprocess.Popen(["curl", "-s", "--limit-rate", "20M", "-o", "/dev/null",
                               f"http://localhost:{PUSH_PORT}/v2/dev/big/blobs/{layer}"])
    time.sleep(3)
    busy = connect.cpu_seconds()
    client.kill()  # the client goes away in the middle of a 1 GiB blob
    client.wait()
    time.sleep(2)
    settled = connect.cpu_seconds()
    time.sleep(5)
    idle = connect.cpu_seconds() - settled
    print(f"\nafter the client left mid-pull: {idle:.2f} s CPU in 5 s (was at {busy:.1f} s total)")
    assert idle < 0.1
    assert connect.status("VmRSS") <= MEMORY_LIMIT_KIB


def test_a_replaced_push_proxy_pod_is_followed_and_a_push_in_flight_is_retried(connect, inst, work, stack):
    layout = work / "during"
    devloop.large_image(layout, (GIB,))  # long enough to be in flight when the old pod goes
    result: list = []
    copy = threading.Thread(target=lambda: result.append(devloop.skopeo(
        f"oci:{layout}:latest", f"docker://localhost:{PUSH_PORT}/dev/during:v1", retries=3)))
    copy.start()
    time.sleep(2)
    stack.kubectl("-n", inst.push_namespace, "rollout", "restart", "deployment/push-proxy")
    stack.kubectl("-n", inst.push_namespace, "rollout", "status", "deployment/push-proxy", "--timeout=180s")
    copy.join()
    [(pushed, took)] = result
    print(f"\na 1 GiB push while the push-proxy pod was replaced: exit {pushed.returncode} in {took:.1f} s; "
          f"skopeo said: {' | '.join(line for line in pushed.stderr.splitlines() if 'etry' in line)[:600]}; "
          f"connect said: {' | '.join(connect.output().splitlines()[6:])[:600]}")
    assert pushed.returncode == 0, pushed.stderr
    after, _ = devloop.skopeo(f"oci:{layout}:latest", f"docker://localhost:{PUSH_PORT}/dev/after:v1")
    assert after.returncode == 0, after.stderr
    assert "is gone or not ready; forwarding to pod" in connect.output()
