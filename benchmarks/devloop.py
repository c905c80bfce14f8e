"""The dev loop on the real stack, side by side in one run:

1. push and pull throughput of a fresh layer (256 MiB, `--size-mib`) through `meshreg connect` (streaming
   port-forward -> push-proxy Envoy -> mTLS -> registry) and through a plain `kubectl port-forward` to the registry
   pod (straight into the registry's process, past every policy: the insecure way people use today), paired runs,
   medians; target >= 0.8x; and `meshreg connect`'s peak resident size through them (target <= 100 MB);
2. the inner loop of a one-line change with the real Tilt (`tilt up`, a custom_build pushing with skopeo): the time
   from writing the file to a new pod Running and printing the new line, through meshreg (KEP-1755 from
   `meshreg up`, pushes through `meshreg connect`, pulls from the node proxy) next to Tilt with a plain registry
   (a registry pod with a hostPort, the kind/k3d local-registry recipe, published in KEP-1755 the same way);
   target <= 1.2x.

    python benchmarks/devloop.py [--pushes 5] [--size-mib 256] [--edits 5]

Needs the real stack (../shared/lab-kube real-node.sh, ../shared/lab-istio mesh.sh) and ../shared/lab-devtools'
Tilt. Uses namespaces dl-bench*, ports 5030-5041 and holds the labs' lock on kube-public/local-registry-hosting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support import devloop, realstack

NAME, NODE_PORT, PUSH_PORT, FORWARD_PORT, PROXY_PORT, PLAIN_PORT = "dl-bench", 5030, 5031, 5032, 5033, 5040
TARGETS = {"push": 0.8, "pull": 0.8, "inner loop": 1.2}
TAG_SECONDS = 1.5  # between two edits: Tilt's tags count whole seconds
PLAIN = "dl-bench-registry"


def _forward(stack: realstack.Stack, namespace: str, name: str, ports: str) -> subprocess.Popen:
    pod = json.loads(stack.kubectl("-n", namespace, "get", "pods", "-l", f"app.kubernetes.io/name={name}", "-o",
                                   "json").stdout)["items"][0]["metadata"]["name"]
    return subprocess.Popen(["kubectl", "-n", namespace, "port-forward", f"pod/{pod}", ports], env=stack.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


PATHS = {PUSH_PORT: "meshreg connect", FORWARD_PORT: "kubectl to the registry", PROXY_PORT: "kubectl to the push proxy"}


@dataclass
class Transfers:
    """MB/s of paired transfers by port (push, then pull of what was pushed), and connect's peak resident KiB."""

    push: dict[int, list[float]] = field(default_factory=lambda: {port: [] for port in PATHS})
    pull: dict[int, list[float]] = field(default_factory=lambda: {port: [] for port in PATHS})
    connect_peak_kib: int = 0


def _copy(src: str, dest: str, size: int, what: str) -> float:
    result, took = devloop.skopeo(src, dest)
    if result.returncode != 0:
        raise SystemExit(f"{what} failed: {result.stderr[-500:]}")
    return size / took / 1e6


def _round(i: int, work: Path, size: int, figures: Transfers) -> None:
    """One push and one pull of a fresh layer on each path, in turn."""
    for port, name in PATHS.items():
        layout, back = work / f"push-{i}-{port}", work / f"pull-{i}-{port}"
        devloop.large_image(layout, (size,))
        ref = f"docker://localhost:{port}/dev/b{i}-{port}:v1"
        figures.push[port].append(_copy(f"oci:{layout}:latest", ref, size, f"push through {name}"))
        shutil.rmtree(layout)
        figures.pull[port].append(_copy(ref, f"oci:{back}:latest", size, f"pull through {name}"))
        shutil.rmtree(back)
        print(f"  round {i + 1} via {name}: push {figures.push[port][-1]:.1f} MB/s, "
              f"pull {figures.pull[port][-1]:.1f} MB/s", flush=True)


def transfer_figures(stack: realstack.Stack, inst: devloop.Instance, work: Path, runs: int, size: int) -> Transfers:
    """Paired pushes and pulls through meshreg connect, through kubectl port-forward to the registry pod, and (to
    tell the port-forward from the mesh's two Envoys) through kubectl port-forward to the push-proxy pod."""
    forwards = [_forward(stack, NAME, "registry", f"{FORWARD_PORT}:5000"),
                _forward(stack, inst.push_namespace, "push-proxy", f"{PROXY_PORT}:{PUSH_PORT}")]
    figures = Transfers()
    try:
        time.sleep(2)
        with devloop.connected(inst, workdir=work) as connect:
            for i in range(runs):
                _round(i, work, size, figures)
            figures.connect_peak_kib = connect.status("VmHWM")
    finally:
        for forward in forwards:
            forward.terminate()
            forward.wait()
    return figures


@contextlib.contextmanager
def plain_registry(stack: realstack.Stack) -> Iterator[None]:
    """registry:2 with hostPort 127.0.0.1:5040 and KEP-1755 naming it (host = pull name), as kind's recipe does."""
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PLAIN}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "registry", "namespace": PLAIN},
         "spec": {"containers": [{"name": "registry", "image": stack.registry_image, "imagePullPolicy": "IfNotPresent",
                                  "ports": [{"containerPort": 5000, "hostPort": PLAIN_PORT, "hostIP": "127.0.0.1"}]}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "local-registry-hosting",
                                                               "namespace": "kube-public"},
         "data": {"localRegistryHosting.v1": f"host: localhost:{PLAIN_PORT}\n"}}]
    stack.kubectl("-n", "kube-public", "delete", "configmap", "local-registry-hosting", "--ignore-not-found")
    stack.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    stack.kubectl("-n", PLAIN, "wait", "--for=condition=Ready", "pod/registry", "--timeout=120s")
    try:
        yield
    finally:
        stack.kubectl("delete", "namespace", PLAIN, "--wait=false", check=False)
        stack.kubectl("-n", "kube-public", "delete", "configmap", "local-registry-hosting", check=False)


def inner_loop(stack: realstack.Stack, work: Path, label: str, edits: int, env: dict) -> list[float]:
    """Seconds from an edit to a new pod Running that prints it, with `tilt up` running."""
    namespace = f"dl-bench-{label}"
    stack.kubectl("create", "namespace", namespace)
    folder = work / label
    folder.mkdir()
    (folder / "hello.txt").write_text("edit 0\n")
    (folder / "Tiltfile").write_text(devloop.tiltfile("example.com/team/app", context="lab"))
    (folder / "k8s.yaml").write_text(devloop.deployment("app", namespace, "example.com/team/app"))
    with open(folder / "tilt.log", "w") as log:
        tilt = subprocess.Popen([str(devloop.TILT), "up", "--port", "10393", "--stream"], cwd=folder, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    times = []
    try:
        _wait_for(stack, namespace, "edit 0\n", timeout=180)
        last = time.monotonic()  # the first build's second is over by now, or soon
        for i in range(1, edits + 1):
            # Tilt tags a custom_build `tilt-build-<unix seconds>`: an edit within the second of the last build
            # would get its tag, leave the pod spec as it is, and no pod would start (as with any client of Tilt).
            time.sleep(max(0.0, last + TAG_SECONDS - time.monotonic()))
            start = last = time.monotonic()
            (folder / "hello.txt").write_text(f"edit {i}\n")
            _wait_for(stack, namespace, f"edit {i}\n", timeout=180)
            times.append(time.monotonic() - start)
            print(f"  {label}: edit {i}/{edits} running after {times[-1]:.2f} s", flush=True)
    except SystemExit as e:  # say what Tilt saw, and what the namespace holds, before its namespace goes
        pods = stack.kubectl("-n", namespace, "get", "pods,events", "-o", "wide", check=False).stdout
        log = (folder / "tilt.log").read_text(errors="replace")[-4000:]
        raise SystemExit(f"{e}\n--- {namespace}:\n{pods}\n--- the end of tilt up's log:\n{log}") from None
    finally:
        tilt.terminate()
        tilt.wait(30)
        subprocess.run([str(devloop.TILT), "down"], cwd=folder, env=env, capture_output=True, timeout=120, check=False)
        stack.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    return times


def _wait_for(stack: realstack.Stack, namespace: str, text: str, *, timeout: float) -> None:
    """Until a Running, Ready pod of the namespace has printed `text`."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(stack.kubeconfig)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pod in api.list_namespaced_pod(namespace).items:
            ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
            if pod.status.phase == "Running" and ready and not pod.metadata.deletion_timestamp:
                try:
                    if api.read_namespaced_pod_log(pod.metadata.name, namespace) == text:
                        return
                except client.ApiException:
                    pass
        time.sleep(0.1)
    raise SystemExit(f"no pod in {namespace} printed {text!r} within {timeout:.0f} s")


def row(name: str, ours: list[float], theirs: list[float], unit: str, *, higher_is_better: bool) -> str:
    a, b = statistics.median(ours), statistics.median(theirs)
    ratio = a / b
    target = TARGETS[name]
    met = ratio >= target if higher_is_better else ratio <= target
    return (f"{name:<11} {b:>10.2f} {unit:<5} {a:>10.2f} {unit:<5} {ratio:>6.2f}x  "
            f"{'>=' if higher_is_better else '<='} {target}x {'met' if met else 'MISSED'}")


def _transfer_rows(figures: Transfers) -> None:
    for way, by_port in (("push", figures.push), ("pull", figures.pull)):
        print(row(way, by_port[PUSH_PORT], by_port[FORWARD_PORT], "MB/s", higher_is_better=True)
              + "   (baseline: kubectl port-forward to the registry pod)")
        proxied = statistics.median(by_port[PROXY_PORT])
        print(f"{'':<11} kubectl port-forward to the push-proxy pod (the same two Envoys as connect): "
              f"{proxied:.2f} MB/s, {proxied / statistics.median(by_port[FORWARD_PORT]):.2f}x")
    peak = figures.connect_peak_kib / 1024
    print(f"{'':<11} meshreg connect's peak resident size: {peak:.0f} MiB (target <= 100 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=5, help="paired push and pull rounds")
    parser.add_argument("--size-mib", type=int, default=256, help="the layer pushed and pulled in each round")
    parser.add_argument("--edits", type=int, default=5, help="edits timed with Tilt on each side (0: none)")
    args = parser.parse_args()
    stack, why = realstack.find()
    if stack is None or devloop.tools_missing(devloop.TILT):
        raise SystemExit(f"needs the real stack and Tilt: {why or devloop.tools_missing(devloop.TILT)}")
    need = 3 * args.pushes * (args.size_mib << 20)  # every layer pushed stays in the registry's volume, under work
    if shutil.disk_usage(tempfile.gettempdir()).free < need + (2 << 30):
        raise SystemExit(f"needs {need / 2**30 + 2:.0f} GiB free in {tempfile.gettempdir()} for the registry's volume")
    work = Path(tempfile.mkdtemp(prefix="dl-bench-"))
    try:
        env = devloop.tool_env(stack, work / "home", devloop.base_image(work))
        print(f"load average before: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
        figures, ours_loop, their_loop = None, [], []
        with devloop.instance(stack, NAME, node_port=NODE_PORT, push_port=PUSH_PORT, workdir=work) as inst:
            if args.pushes:
                figures = transfer_figures(stack, inst, work, args.pushes, args.size_mib << 20)
            if args.edits:
                with devloop.connected(inst, workdir=work):
                    ours_loop = inner_loop(stack, work, "meshreg", args.edits, env)
                with plain_registry(stack):
                    their_loop = inner_loop(stack, work, "plain", args.edits, env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(f"\n{'':<11} {'baseline':>16} {'meshreg':>16} {'ratio':>7}  target   ({args.size_mib} MiB layers)")
    if figures:
        _transfer_rows(figures)
    if ours_loop:
        print(row("inner loop", ours_loop, their_loop, "s", higher_is_better=False)
              + "   (baseline: Tilt with a plain hostPort registry)")


if __name__ == "__main__":
    main()
