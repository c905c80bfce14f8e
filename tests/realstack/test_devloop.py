"""The dev loop with the real Tilt and Skaffold on the real node: what meshreg publishes in KEP-1755 makes their
auto-detected names land in the push proxy's scope; they push through `meshreg connect` (a real port-forward:
API server -> kubelet -> the push-proxy pod) and the pod they deploy pulls and runs.

This machine is the cluster's only node, as on k3s or minikube's none driver: 127.0.0.1:<node proxy port> is the
node proxy's hostPort here. So the instance uses the split setup (node proxy on 5010, push proxy on 5011): Tilt
pushes localhost:5011/dev/... and deploys localhost:5010/dev/... (hostFromContainerRuntime); Skaffold deploys the
name it pushed, localhost:5011/dev/..., which the kubelet on this machine pulls through `meshreg connect` too.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from support import devloop

NAME, NODE_PORT, PUSH_PORT = "dl-loop", 5010, 5011
IMAGE = "example.com/team/app"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("devloop")


@pytest.fixture(scope="module")
def loop(stack, work):
    with devloop.instance(stack, NAME, node_port=NODE_PORT, push_port=PUSH_PORT, workdir=work) as inst, \
            devloop.connected(inst, workdir=work) as running:
        yield inst, running


def needs(tool: Path) -> None:
    why = devloop.tools_missing(tool)
    if why:
        pytest.skip(why)


@pytest.fixture(scope="module")
def env(stack, work):
    return devloop.tool_env(stack, work / "home", devloop.base_image(work))


def project(work: Path, name: str, files: dict[str, str]) -> Path:
    folder = work / name
    folder.mkdir(exist_ok=True)
    for file, text in files.items():
        (folder / file).write_text(text)
    return folder


@pytest.fixture
def namespace(stack, request):
    name = f"dl-{request.node.name.split('_')[1]}"
    stack.kubectl("create", "namespace", name)
    yield name
    stack.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_what_meshreg_publishes_points_tools_at_connect_under_the_push_proxys_prefix(loop):
    inst, running = loop
    assert inst.published() | {"help": ""} == {
        "host": f"localhost:{PUSH_PORT}/dev", "hostFromContainerRuntime": f"localhost:{NODE_PORT}/dev",
        "hostFromClusterNetwork": f"registry.{NAME}.svc.cluster.local:5000", "help": ""}
    assert running.output().startswith(f"forwarding localhost:{PUSH_PORT} -> pod {NAME}-push/push-proxy-")


def test_tilt_ci_pushes_through_connect_and_deploys_the_node_proxys_name(loop, env, work, stack, namespace):
    needs(devloop.TILT)
    folder = project(work, "tilt", {"hello.txt": "hello from tilt\n",
                                    "Tiltfile": devloop.tiltfile(IMAGE, context="lab"),
                                    "k8s.yaml": devloop.deployment("app", namespace, IMAGE)})
    run = subprocess.run([str(devloop.TILT), "ci", "--port", "10391", "--timeout", "4m"], check=False, cwd=folder,
                         env=env, capture_output=True, text=True, timeout=300)
    log = run.stdout + run.stderr
    (folder / "tilt-ci.log").write_text(log)  # kept in pytest's temporary directory for a reader
    try:
        assert run.returncode == 0, log[-4000:]
        assert f"Auto-detected local registry from environment: &{{localhost:{PUSH_PORT}/dev " in log
        pushed = re.search(r"EXPECTED_REF=(\S+)", log).group(1)
        assert re.fullmatch(rf"localhost:{PUSH_PORT}/dev/example\.com_team_app:tilt-build-\d+", pushed)
        assert "Writing manifest to image destination" in log and "SUCCESS. All workloads are healthy." in log
        [(pod, image, phase)] = devloop.pod_images(stack, namespace)
        assert image == pushed.replace(f":{PUSH_PORT}/", f":{NODE_PORT}/") and phase == "Running"
        assert stack.kubectl("-n", namespace, "logs", pod).stdout == "hello from tilt\n"
    finally:
        subprocess.run([str(devloop.TILT), "down"], check=False, cwd=folder, env=env, capture_output=True, timeout=120)


def test_skaffold_run_pushes_through_connect_and_deploys_the_same_name(loop, env, work, stack, namespace):
    needs(devloop.SKAFFOLD)
    devloop.skaffold_setup(env, "lab")
    folder = project(work, "skaffold", {"hello.txt": "hello from skaffold\n",
                                        "skaffold.yaml": devloop.skaffold_yaml(IMAGE),
                                        "k8s.yaml": devloop.deployment("app", namespace, IMAGE)})
    run = subprocess.run([str(devloop.SKAFFOLD), "run", "--status-check=true", "--tag", "v1"], check=False,
                         cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    log = run.stdout + run.stderr
    (folder / "skaffold-run.log").write_text(log)
    try:
        assert run.returncode == 0, log[-4000:]
        pushed = f"localhost:{PUSH_PORT}/dev/example_com_team_app:v1"
        assert f"docker://{pushed}" in log and "Writing manifest to image destination" in log
        [(pod, image, phase)] = devloop.pod_images(stack, namespace)
        assert image.startswith(pushed + "@sha256:") and phase == "Running"  # the kubelet pulled it via connect
        assert stack.kubectl("-n", namespace, "logs", pod).stdout == "hello from skaffold\n"
    finally:
        subprocess.run([str(devloop.SKAFFOLD), "delete"], check=False, cwd=folder, env=env, capture_output=True,
                       timeout=120)


def test_connect_on_the_node_proxys_port_of_this_node_says_it_is_intercepted(loop):
    inst, _ = loop
    run = inst.meshreg("connect", "--port", str(NODE_PORT), check=False, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        (f"meshreg: error: 127.0.0.1:{NODE_PORT} is intercepted: this machine is a Kubernetes node and a pod's "
         "hostPort (such as meshreg's read-only node proxy) takes every connection to it; pick another port with "
         "--port")]
