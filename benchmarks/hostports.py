"""The cost of up's hostPort check (doctor's `nodes` check) as a cluster grows from 100 to 50,000 pods, beside
the pods count: with the node proxy deployed and ready on every node (each later `up`), and with the node proxy
holding other ports than the config asks for (as before the first `up`: every pod is read, which is what every
`up` did before issue 27).

    python benchmarks/hostports.py --kubeconfig K [--pods 100,50000] [--runs 5] [--mark-ready] [--keep]

Use an API server of your own, not a shared one: it creates that many pods (in namespace hostport-bench, spread
over the nodes, Pending, each with one container; every 50th declares a hostPort on another port) and deletes them
at the end. `--mark-ready` writes the node proxy's DaemonSet status as its controller would (an API server without
kube-controller-manager); the lab in ../shared/lab-kube, started with LAB_CONTROLLERS=0 on other ports, is one.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NAMESPACE = "hostport-bench"
MESHREG = [str(Path(sys.executable).parent / "meshreg")]
# meshreg with urllib3's debug log on stderr: one line per HTTP request it sends
LOGGED = ("import logging, sys; logging.basicConfig(stream=sys.stderr, level=logging.DEBUG, format='%(message)s'); "
          "from meshreg.cli import main; sys.argv[0] = 'meshreg'; main()")
SENT = re.compile(r'^https?://\S+ "(GET|PATCH|POST|PUT|DELETE) (\S+) HTTP/1\.1"', re.M)


def kubectl(kubeconfig: str, *args: str, body: str | None = None) -> str:
    done = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, *args], input=body, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def api(kubeconfig: str):  # the kubernetes client, for creating many pods fast
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = 32
    return client.CoreV1Api(client.ApiClient(configuration))


def pod(i: int, node: str) -> dict:
    ports = [{"containerPort": 8080}]
    if i % 50 == 0:  # a few pods hold host ports, none the registry's
        ports = [{"containerPort": 8080, "hostPort": 30000 + i % 1000}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i:06d}", "labels": {"bench": "hostports"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                                      "ports": ports}]}}


def fill(kubeconfig: str, count: int, nodes: list[str]) -> None:
    """Make namespace NAMESPACE hold `count` pods (creating the missing ones, 32 at a time)."""
    from kubernetes.client.exceptions import ApiException

    core = api(kubeconfig)
    for create, body in ((core.create_namespace, {"metadata": {"name": NAMESPACE}}),  # without controllers, the
                         (lambda b: core.create_namespaced_service_account(NAMESPACE, b),  # default account too
                          {"metadata": {"name": "default"}})):
        try:
            create(body)
        except ApiException as e:
            if e.status != 409:
                raise
    existing = {p.metadata.name for p in core.list_namespaced_pod(NAMESPACE).items}
    missing = [i for i in range(count) if f"p-{i:06d}" not in existing]
    extra = sorted(existing - {f"p-{i:06d}" for i in range(count)})
    start = time.perf_counter()
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda i: core.create_namespaced_pod(NAMESPACE, pod(i, nodes[i % len(nodes)])), missing))
        list(pool.map(lambda name: core.delete_namespaced_pod(name, NAMESPACE, grace_period_seconds=0), extra))
    if missing:
        print(f"  created {len(missing)} pods in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def run(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):  # doctor exits 1 on a FAIL, which is an answer here
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout}{done.stderr[-2000:]}")
    return elapsed, done.stdout + done.stderr


def pods_read(args: list[str]) -> tuple[int, int]:
    """(requests sent, pod LISTs among them) by `meshreg ARGS`, from its own request log."""
    _, log = run([sys.executable, "-c", LOGGED, *args])
    sent = SENT.findall(log)
    return len(sent), sum(1 for _, path in sent if re.search(r"/pods(\?|$)", path))


def measure(kubeconfig: str, config: list[str], runs: int) -> dict[str, object]:
    doctor = [*MESHREG, "doctor", "--check", "nodes", *config, "--kubeconfig", kubeconfig]
    times = [run(doctor)[0] for _ in range(runs)]
    requests, pod_lists = pods_read(doctor[1:])
    return {"s": statistics.median(times), "requests": requests, "pod lists": pod_lists,
            "line": next((line for line in run(doctor)[1].splitlines() if "hostPort" in line), "").strip()}


def mark_ready(kubeconfig: str, nodes: int) -> None:
    status = ('{"status":{"observedGeneration":%d,"desiredNumberScheduled":%d,"updatedNumberScheduled":%d,'
              '"numberReady":%d,"currentNumberScheduled":%d,"numberAvailable":%d}}')
    generation = int(kubectl(kubeconfig, "-n", "meshreg", "get", "daemonset", "node-proxy", "-o",
                             "jsonpath={.metadata.generation}"))
    kubectl(kubeconfig, "-n", "meshreg", "patch", "daemonset", "node-proxy", "--subresource=status", "--type=merge",
            "-p", status % (generation, *[nodes] * 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--pods", default="100,50000", help="pod counts, ascending, comma-separated")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mark-ready", action="store_true",
                        help="write the node proxy DaemonSet's status (an API server without controllers)")
    parser.add_argument("--keep", action="store_true", help="leave the pods in place")
    args = parser.parse_args()
    kc = args.kubeconfig
    nodes = kubectl(kc, "get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").split()
    if not nodes:
        sys.exit("the API server has no nodes")
    with tempfile.TemporaryDirectory() as tmp:
        other = os.path.join(tmp, "other-port.yaml")  # the deployed node proxy holds 5000; this asks for 5009
        Path(other).write_text("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: meshreg}\n"
                               "spec: {nodeProxy: {port: 5009}, localRegistryHosting: {publish: false}}\n")
        run([*MESHREG, "up", "-q", "--no-wait", "--kubeconfig", kc])
        if args.mark_ready:
            mark_ready(kc, len(nodes))
        rows = []
        try:
            for count in (int(n) for n in args.pods.split(",")):
                fill(kc, count, nodes)
                ready = measure(kc, [], args.runs)
                before = measure(kc, ["-c", other], args.runs)
                up_times = [run([*MESHREG, "up", "-q", "--no-wait", "--kubeconfig", kc])[0] for _ in range(args.runs)]
                rows.append((count, ready, before, statistics.median(up_times)))
        finally:
            if not args.keep:
                subprocess.run(["kubectl", "--kubeconfig", kc, "-n", NAMESPACE, "delete", "pods", "--all",
                                "--grace-period=0", "--force", "--wait=false"], capture_output=True)
    print(f"hostPort check (meshreg doctor --check nodes), median of {args.runs}, {len(nodes)} nodes; "
          "'deployed': the node proxy ready on every node (each later up); 'every pod': its ports differ from the "
          "config's (the first up, and every up before issue 27)")
    print(f"{'pods':>7} {'deployed':>9} {'requests':>9} {'pod LISTs':>10} {'every pod':>10} {'requests':>9} "
          f"{'pod LISTs':>10} {'up --no-wait':>13}")
    for count, ready, before, up_s in rows:
        print(f"{count:>7} {ready['s']:>8.2f}s {ready['requests']:>9} {ready['pod lists']:>10} {before['s']:>9.2f}s "
              f"{before['requests']:>9} {before['pod lists']:>10} {up_s:>12.2f}s")
    print(f"deployed: {rows[-1][1]['line']}")


if __name__ == "__main__":
    main()
