"""Load on real pods: WRITERS writers push at once, each through its own Istio sidecar (4 layer uploads in parallel,
like docker; layers every writer shares and layers of its own; five writers to a repository), while PULLERS clients
pull what they push through the node proxy, as the kubelets starting that many pods would (manifest, then every blob,
each checked by digest). Afterwards every image a writer pushed is pulled back by its digest through the node proxy
and checked byte for byte (sha256 of the manifest and of every blob).

Prints, beside the targets: failed requests (0), images that do not pull back identical (0), push and pull latency
(p50/p99 per image and per request), throughput, and the peak memory of the registry, its sidecar and the node proxy
beside their limits (meshreg's rendered ones; Istio's injected default for the sidecar).

    python benchmarks/load.py [--writers 20] [--pullers 50] [--seconds 120] [--layer-kib 1024] [--pods 20] ...

Needs the real stack (../shared/lab-kube with real-node.sh, ../shared/lab-istio mesh.sh; tests/realstack says how to
start it). Its node has 2 CPUs, shared: with the defaults a run takes about 5 minutes (about 1.5 to deploy and start
the writer pods, SECONDS of load, 1 to verify and clean up). It deploys instance fl-load (namespace fl-load, writers in
fl-loadw, node proxy on 127.0.0.1:5246 of the node, which is this host) and removes all of it afterwards.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import faults, realstack  # noqa: E402
from support.registryclient import Client, Failed, Stats  # noqa: E402

PORT = 5246
NAMESPACE, WRITERS = "fl-load", "fl-loadw"
BASE = f"http://127.0.0.1:{PORT}"  # the node proxy's hostPort: what the kubelet pulls from
CGROUPS = Path("/sys/fs/cgroup/memory/kubepods")  # cgroup v1, cgroupfs driver: the lab's kubelet
FIGURES = Path("/tmp/meshreg-faults-figures.jsonl")
MB = 1e6


def config(pods: int) -> str:
    writers = ", ".join(f"{{serviceAccount: {WRITERS}/p{i:02}}}" for i in range(pods))
    return f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: {NAMESPACE}}}
spec:
  namespace: {NAMESPACE}
  localRegistryHosting: {{publish: false}}
  nodeProxy: {{port: {PORT}}}
  registry:
    storage: {{size: 20Gi}}
  writers: [{writers}]
"""


# Memory ----------------------------------------------------------------------------------------------------------


@dataclass
class Watched:
    """One container's memory cgroup, sampled: peak working set (usage less inactive files, what the kubelet and
    `kubectl top` report and what an OOM kill is judged against, roughly), peak RSS, and the cgroup's own maximum
    (page cache included)."""

    name: str
    cgroup: Path
    limit: str
    source: str
    working_set: int = 0
    rss: int = 0
    cgroup_max: int = 0

    def sample(self) -> None:
        try:
            usage = int((self.cgroup / "memory.usage_in_bytes").read_text())
            stat = dict(line.split() for line in (self.cgroup / "memory.stat").read_text().splitlines())
        except OSError:
            return  # the container restarted or is gone
        self.working_set = max(self.working_set, usage - int(stat.get("total_inactive_file", 0)))
        self.rss = max(self.rss, int(stat.get("total_rss", 0)))

    def last(self) -> None:
        """The cgroup's own maximum, read while the container is still there."""
        with contextlib.suppress(OSError):
            self.cgroup_max = int((self.cgroup / "memory.max_usage_in_bytes").read_text())


def cgroup_of(pod: dict, container: str) -> Path:
    cid = faults.container_id(pod, container).split("//")[-1]
    uid = pod["metadata"]["uid"]
    for qos in ("burstable", "besteffort", ""):
        path = CGROUPS / qos / f"pod{uid}" / cid
        if path.is_dir():
            return path
    raise SystemExit(f"no memory cgroup for {pod['metadata']['name']}/{container} under {CGROUPS}")


def limit_of(pod: dict, container: str) -> str:
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == container)
    return str(spec.get("resources", {}).get("limits", {}).get("memory", "none"))


def watched(stack: realstack.Stack, instance: faults.Instance) -> list[Watched]:
    [registry] = instance.registry_pods()
    [proxy] = instance.pods("app.kubernetes.io/component=node-proxy")
    out = [Watched("registry", cgroup_of(registry, "registry"), limit_of(registry, "registry"),
                   "rendered: registry.resources"),
           Watched("registry's sidecar", cgroup_of(registry, "istio-proxy"), limit_of(registry, "istio-proxy"),
                   "Istio's injected default"),
           Watched("node proxy", cgroup_of(proxy, "istio-proxy"), limit_of(proxy, "istio-proxy"),
                   "rendered: nodeProxy.resources")]
    for pod in faults.get(stack, "pods", namespace=WRITERS):
        out.append(Watched(f"writer sidecar {pod['metadata']['name']}", cgroup_of(pod, "istio-proxy"),
                           limit_of(pod, "istio-proxy"), "Istio's injected default"))
    return out


class Sampler(threading.Thread):
    def __init__(self, containers: list[Watched]) -> None:
        super().__init__(daemon=True)
        self.containers, self.stop = containers, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for c in self.containers:
                c.sample()
            self.stop.wait(0.5)
        for c in self.containers:
            c.last()


# Pulls -----------------------------------------------------------------------------------------------------------


@dataclass
class Pulls:
    """What the pullers did: every request, and per image its seconds and bytes, or why it failed."""

    stats: Stats = field(default_factory=Stats)
    images: list[tuple[float, int]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def complete(tags: list[str]) -> list[str]:
    """The tags whose push has finished: all but each writer's newest (`wNN-n`; a writer pushes one image after
    another). The registry lists a tag while it is still writing it (distribution makes the tag's directory before
    its link), and a kubelet only pulls references that exist."""
    newest: dict[str, int] = {}
    for tag in tags:
        writer, _, n = tag.rpartition("-")
        newest[writer] = max(newest.get(writer, -1), int(n))
    return [t for t in tags if int(t.rpartition("-")[2]) < newest[t.rpartition("-")[0]]]


def puller(pulls: Pulls, repo: str, seed: int, until: float) -> None:
    """Pull random images of `repo` until `until`, as kubelets do (tags refreshed every few pulls)."""
    client, rng, tags = Client(BASE, pulls.stats, timeout=60), random.Random(seed), [""]
    for n in range(1 << 30):
        if time.time() >= until:
            return
        if n % 5 == 0 or not tags:
            found = client.request("tags", "GET", f"/v2/{repo}/tags/list", ok=(200, 404))
            tags = complete(json.loads(found.data).get("tags") or []) if found.status == 200 else []  # type: ignore
        if not tags:
            time.sleep(0.5)  # nothing pushed yet
            continue
        started = time.monotonic()
        try:
            size = client.pull(repo, rng.choice(tags))[1]
        except Failed as e:
            with pulls.lock:
                pulls.failed.append(str(e)[:200])
            continue
        with pulls.lock:
            pulls.images.append((time.monotonic() - started, size))


# The run ---------------------------------------------------------------------------------------------------------


def writer_pods(stack: realstack.Stack, args: argparse.Namespace, start_at: float) -> list[str]:
    """The writer pods: writers spread over --pods pods, each pod its own ServiceAccount and sidecar."""
    groups: list[list[int]] = [list(range(args.writers))[i::args.pods] for i in range(args.pods)]
    names = []
    for i, group in enumerate(groups):
        writers = ",".join(f"w{w:02}" for w in group)
        repos = ",".join(f"load/app-{w % args.repos}" for w in group)
        name = f"p{i:02}"
        faults.apply(stack, faults.writer_pod(WRITERS, name, name, [
            "push", "--base", f"http://registry.{NAMESPACE}.svc.cluster.local:5000", "--writer", writers,
            "--repo", repos, "--seconds", str(args.seconds), "--start-at", str(start_at),
            "--layers", str(args.layers), "--shared", str(args.shared), "--size", str(args.layer_kib * 1024),
            "--parallel", str(args.parallel)], node=stack.node, memory="512Mi"))
        names.append(name)
    return names


def all_running(stack: realstack.Stack, names: list[str], *, until: float) -> float:
    """When every writer pod runs (its sidecar ready: the writer is held until then)."""
    while time.time() < until + 600:
        pods = {p["metadata"]["name"]: p for p in faults.get(stack, "pods", namespace=WRITERS)}
        phases = [pods.get(n, {}).get("status", {}).get("phase") for n in names]
        failed = [n for n, p in zip(names, phases, strict=True) if p == "Failed"]
        if failed:
            why = pods[failed[0]]["status"].get("reason", ""), pods[failed[0]]["status"].get("message", "")
            raise SystemExit(f"writer pod {failed[0]} failed to start: {why} (fewer --pods?)")
        if all(p in ("Running", "Succeeded") for p in phases):
            return time.time()
        time.sleep(2)
    raise SystemExit("the writer pods did not start in 10 minutes")


def capacity(stack: realstack.Stack) -> int:
    """How many more pods the node admits."""
    node = faults.get(stack, "node", stack.node)
    on = [p for p in faults.kubectl_json(stack, "get", "pods", "-A")["items"]
          if p["spec"].get("nodeName") == stack.node and p["status"].get("phase") not in ("Succeeded", "Failed")]
    return int(node["status"]["allocatable"]["pods"]) - len(on)


def verify(results: list[dict]) -> tuple[int, list[str]]:
    """Every pushed image pulled back by digest through the node proxy: (verified, failures)."""
    client = Client(BASE, timeout=60)
    images = [(r["repo"], p["digest"]) for r in results for p in r["pushed"]]

    def one(image: tuple[str, str]) -> str:
        try:
            return "" if client.pull(*image)[0] == image[1] else f"{image}: another manifest"
        except Failed as e:
            return f"{image}: {e}"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        failures = [f for f in pool.map(one, images) if f]
    return len(images) - len(failures), failures


def run(stack: realstack.Stack, args: argparse.Namespace, work: Path) -> dict:
    faults.sweep(stack, NAMESPACE, WRITERS)
    faults.python_image(stack)
    if capacity(stack) < args.pods + 2:
        raise SystemExit(f"the node admits {capacity(stack)} more pods; this run needs {args.pods + 2} "
                         "(--pods fewer: each pod then runs several writers)")
    accounts = tuple(f"{WRITERS}/p{i:02}" for i in range(args.pods))
    with faults.deployed(stack, work, config(args.pods), accounts=accounts) as instance:
        faults.client_config_map(stack, WRITERS)
        created = time.time()
        start_at = created + args.lead
        names = writer_pods(stack, args, start_at)
        running = all_running(stack, names, until=start_at)
        print(f"{len(names)} writer pods running {running - created:.0f} s after creation"
              f"{'' if running <= start_at else f', {running - start_at:.0f} s after the start: raise --lead'}",
              flush=True)
        sampler = Sampler(watched(stack, instance))
        sampler.start()
        pulls = Pulls()
        repos = [f"load/app-{i % args.repos}" for i in range(args.pullers)]
        time.sleep(max(0.0, start_at - time.time()))
        with concurrent.futures.ThreadPoolExecutor(args.pullers) as pool:
            list(pool.map(lambda i: puller(pulls, repos[i], i, start_at + args.seconds), range(args.pullers)))
        results = [r for n in names for r in faults.client_results(stack, WRITERS, n, timeout=args.seconds + 600)]
        sampler.stop.set()
        sampler.join()
        verified, failures = verify(results)
        containers = sampler.containers
    return {"results": results, "pulls": pulls, "verified": verified, "unverified": failures,
            "containers": containers, "start_at": start_at, "running_at": running}


# Figures ---------------------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def failed_requests(records: list[dict], expected: dict[str, tuple[int, ...]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        if r["status"] not in expected.get(r["what"], (200, 201, 202)):
            key = f"{r['what']} {r['status']}"
            out[key] = out.get(key, 0) + 1
    return out


def latencies(name: str, seconds: list[float]) -> dict[str, float]:
    return {f"{name}_p50": pct(seconds, 50), f"{name}_p99": pct(seconds, 99)}


def timed(records: list[dict], what: str) -> list[float]:
    return [r["seconds"] for r in records if r["what"] == what]


def figures(args: argparse.Namespace, out: dict) -> dict:
    results, pulls = out["results"], out["pulls"]
    pushes = [r for w in results for r in w["requests"]]
    pulled = [vars(r) for r in pulls.stats.records]
    images = [p for w in results for p in w["pushed"]]
    uploaded = sum(r["size"] for r in pushes if r["what"] == "upload-patch")
    return {
        "writers": args.writers, "pods": args.pods, "pullers": args.pullers, "seconds": args.seconds,
        "layers": args.layers, "shared": args.shared, "layer_kib": args.layer_kib, "parallel": args.parallel,
        "push_requests": len(pushes), "pull_requests": len(pulled),
        "failed_push_requests": failed_requests(pushes, {"blob-head": (200, 404)}),
        "failed_pull_requests": failed_requests(pulled, {"tags": (200, 404)}),
        "failed_pushes": [f for w in results for f in w["failed"]], "failed_pulls": pulls.failed,
        "pushed_images": len(images), "verified_images": out["verified"], "unverified": out["unverified"][:20],
        **latencies("push_image", [p["seconds"] for p in images]), **latencies("patch", timed(pushes, "upload-patch")),
        **latencies("pull_image", [s for s, _ in pulls.images]), **latencies("blob_get", timed(pulled, "blob-get")),
        "pulled_images": len(pulls.images),
        "push_mb_s": uploaded / MB / args.seconds, "pushed_images_s": len(images) / args.seconds,
        "pull_mb_s": sum(b for _, b in pulls.images) / MB / args.seconds,
        "memory": [{"container": c.name, "working_set_mib": c.working_set / 2**20, "rss_mib": c.rss / 2**20,
                    "cgroup_max_mib": c.cgroup_max / 2**20, "limit": c.limit, "source": c.source}
                   for c in out["containers"]],
    }


def report(f: dict) -> None:
    failed = sum(f["failed_push_requests"].values()) + sum(f["failed_pull_requests"].values())
    print(f"\n{f['writers']} writers in {f['pods']} pods (each {f['parallel']} layer uploads at once; images of "
          f"{f['layers']} layers of {f['layer_kib']} KiB, {f['shared']} shared by all), {f['pullers']} pullers "
          f"through the node proxy, {f['seconds']:.0f} s")
    rows = [
        ("failed requests", f"{failed} of {f['push_requests'] + f['pull_requests']}", "0"),
        ("images not pushed", f"{len(f['failed_pushes'])} of {f['pushed_images'] + len(f['failed_pushes'])}", "0"),
        ("images not pulled", f"{len(f['failed_pulls'])} of {f['pulled_images'] + len(f['failed_pulls'])}", "0"),
        ("pushed images pulled back identical", f"{f['verified_images']} of {f['pushed_images']}", "all"),
        ("push an image, p50 / p99", f"{f['push_image_p50']:.2f} s / {f['push_image_p99']:.2f} s", ""),
        ("  one PATCH, p50 / p99", f"{f['patch_p50'] * 1000:.0f} ms / {f['patch_p99'] * 1000:.0f} ms", ""),
        ("pull an image, p50 / p99", f"{f['pull_image_p50']:.2f} s / {f['pull_image_p99']:.2f} s", ""),
        ("  one blob GET, p50 / p99", f"{f['blob_get_p50'] * 1000:.0f} ms / {f['blob_get_p99'] * 1000:.0f} ms", ""),
        ("push throughput", f"{f['push_mb_s']:.1f} MB/s uploaded, {f['pushed_images_s']:.2f} images/s", ""),
        ("pull throughput", f"{f['pull_mb_s']:.1f} MB/s, {f['pulled_images'] / f['seconds']:.2f} images/s", ""),
    ]
    print(f"  {'':<38} {'measured':<34} target")
    for name, value, target in rows:
        print(f"  {name:<38} {value:<34} {target}")
    print(f"\n  {'peak memory, MiB':<38} {'working set':>11} {'rss':>7} {'cgroup max':>10}  limit")
    print(f"  {'(working set and cgroup max count page cache; the kernel reclaims it before an OOM kill)':<38}")
    writers = [m for m in f["memory"] if m["container"].startswith("writer sidecar")]
    shown = [m for m in f["memory"] if m not in writers]
    if writers:
        top = max(writers, key=lambda m: m["working_set_mib"])
        shown.append({**top, "container": f"writer sidecars (largest of {len(writers)})"})
    for m in shown:
        print(f"  {m['container']:<38} {m['working_set_mib']:>11.0f} {m['rss_mib']:>7.0f} {m['cgroup_max_mib']:>10.0f}"
              f"  {m['limit']} ({m['source']})")
    for what, value in (("failed push requests", f["failed_push_requests"]),
                        ("failed pull requests", f["failed_pull_requests"]),
                        ("failed pushes", f["failed_pushes"][:5]), ("failed pulls", f["failed_pulls"][:5]),
                        ("not identical", f["unverified"][:5])):
        if value:
            print(f"  {what}: {value}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=20, help="writers pushing at once (default 20)")
    parser.add_argument("--pods", type=int, default=0, help="writer pods, each its own sidecar (default: --writers)")
    parser.add_argument("--pullers", type=int, default=50, help="clients pulling through the node proxy (default 50)")
    parser.add_argument("--seconds", type=float, default=120, help="how long they push and pull (default 120)")
    parser.add_argument("--layers", type=int, default=5, help="layers per image (default 5)")
    parser.add_argument("--shared", type=int, default=2, help="of those, shared by every writer (default 2)")
    parser.add_argument("--layer-kib", type=int, default=1024, help="layer size in KiB (default 1024)")
    parser.add_argument("--parallel", type=int, default=4, help="layer uploads at once per writer (default 4)")
    parser.add_argument("--repos", type=int, default=4, help="repositories the writers share (default 4)")
    parser.add_argument("--lead", type=float, default=0, help="seconds for the writer pods to start (default "
                        "20 + 2 per pod)")
    args = parser.parse_args()
    args.pods = args.pods or args.writers
    args.lead = args.lead or 20 + 2 * args.pods
    if not 0 < args.pods <= args.writers or not 0 <= args.shared <= args.layers:
        raise SystemExit("--pods must be 1 to --writers, --shared 0 to --layers")
    return args


def main() -> int:
    args = arguments()
    stack, why = realstack.find()
    if stack is None:
        raise SystemExit(f"the real stack is not running: {why}")
    with tempfile.TemporaryDirectory(prefix="meshreg-load-") as work:
        out = run(stack, args, Path(work) / NAMESPACE)
    f = figures(args, out)
    report(f)
    with FIGURES.open("a") as file:
        file.write(json.dumps({"figure": "load", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **f})
                   + "\n")
    ok = not (f["failed_push_requests"] or f["failed_pull_requests"] or f["failed_pushes"] or f["failed_pulls"]
              or f["unverified"]) and f["verified_images"] == f["pushed_images"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
