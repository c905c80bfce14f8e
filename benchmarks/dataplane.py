"""Push and pull throughput with skopeo: direct to the registry, through the mTLS sidecar, through the node proxy
and through the push proxy (what `meshreg connect` forwards to).

Runs the end-to-end lab (real registry with meshreg's rendered config, real Envoy with the rendered policies) once
per Envoy tuning variant and prints the median MB/s of several runs and the ratio to direct.

    python benchmarks/dataplane.py [--size-mb 128] [--runs 7] [--variants istio-default,h2-upstream]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.e2e_cases import WRITER  # noqa: E402
from support.lab import images  # noqa: E402
from support.lab.clients import skopeo_copy  # noqa: E402
from support.lab.envoy import Tuning  # noqa: E402
from support.lab.mesh import Lab  # noqa: E402
from support.lab.processes import missing_parts  # noqa: E402
from support.push_cases import WITH_PUSH_PROXY  # noqa: E402  (the e2e lab's writers plus a push proxy for dev/)

MiB = 2**20
VARIANTS = {
    "istio-default": Tuning(),  # HTTP/1.1 node proxy -> sidecar (appProtocol http), Envoy's 1 MiB buffers
    "h2-upstream": Tuning(upstream_h2=True),  # DestinationRule h2UpgradePolicy: UPGRADE
    "h2-16MiB-windows": Tuning(upstream_h2=True, h2_window_bytes=16 * MiB),
    "buffers-32KiB": Tuning(buffer_bytes=32 * 1024),
    "buffers-4MiB": Tuning(buffer_bytes=4 * MiB),
    "one-worker": Tuning(concurrency=1),  # a node proxy limited to one CPU
}
PATHS = ("direct", "sidecar", "node proxy", "push proxy")
PUSH_PROXY_TARGET = 0.8  # laptop pushes through the push proxy, relative to pushing straight to the registry


def _timed(src: str, dest: str, **idents) -> float:
    start = time.perf_counter()
    result = skopeo_copy(src, dest, timeout=600, **idents)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"skopeo copy {src} {dest} failed:\n{result.stderr}")
    return elapsed


def _one_run(lab: Lab, work: Path, i: int, size: int) -> dict:
    """Push a fresh image direct, through the sidecar and through the push proxy, then pull it back four ways;
    MB/s per (op, path)."""
    image = images.build(work / f"image-{i}", layer_sizes=(size,))
    writer = lab.identity(WRITER)
    mbs = lambda seconds: image.size / seconds / 1e6  # noqa: E731
    out = {("push", "direct"): mbs(_timed(image.ref, f"docker://{lab.direct}/bench/direct-{i}:v1")),
           ("push", "sidecar"): mbs(_timed(image.ref, f"docker://{lab.sidecar}/bench/sidecar-{i}:v1",
                                           dest_ident=writer)),
           ("push", "push proxy"): mbs(_timed(image.ref, f"docker://{lab.push_proxy}/dev/push-proxy-{i}:v1"))}
    sources = {"direct": (lab.direct, {}), "sidecar": (lab.sidecar, {"src_ident": writer}),
               "node proxy": (lab.node_proxy, {}), "push proxy": (lab.push_proxy, {})}
    for path, (address, idents) in sources.items():
        dest = work / f"pull-{i}-{path.replace(' ', '-')}"
        out[("pull", path)] = mbs(_timed(f"docker://{address}/bench/direct-{i}:v1", f"oci:{dest}:v1", **idents))
        shutil.rmtree(dest)
    shutil.rmtree(work / f"image-{i}")
    return out


def measure(names: list[str], *, size: int, runs: int, work: Path) -> dict:
    """Median MB/s per variant; variants take turns within each run so machine drift hits them alike."""
    labs: dict[str, Lab] = {}
    try:
        for name in names:
            labs[name] = Lab(WITH_PUSH_PROXY, work / name / "lab", tuning=VARIANTS[name])
        results: dict[str, list] = {name: [] for name in names}
        for i in range(runs):
            for name in names[i % len(names):] + names[:i % len(names)]:
                results[name].append(_one_run(labs[name], work / name, i, size))
    finally:
        for lab in labs.values():
            lab.close()
    return {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in results.items()}


def report(name: str, medians: dict) -> None:
    print(f"\n{name}")
    print(f"  {'path':<12} {'push MB/s':>10} {'x direct':>9} {'pull MB/s':>10} {'x direct':>9}")
    for path in PATHS:
        cells = []
        for op in ("push", "pull"):
            value = medians.get((op, path))
            cells += [f"{value:10.0f}", f"{value / medians[(op, 'direct')]:9.2f}"] if value else \
                [f"{'n/a':>10}", f"{'':>9}"]
        print(f"  {path:<12} " + " ".join(cells))
    if medians.get(("push", "push proxy")):
        ratio = medians[("push", "push proxy")] / medians[("push", "direct")]
        print(f"  push through the push proxy: {ratio:.2f}x direct (target: at least {PUSH_PROXY_TARGET:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=128, help="layer size in MiB (default 128)")
    parser.add_argument("--runs", type=int, default=7, help="runs per variant; the median is printed (default 7)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    args = parser.parse_args()
    if missing_parts():
        raise SystemExit("missing: " + "; ".join(missing_parts()))
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    print(f"layer {args.size_mb} MiB, median of {args.runs} runs, skopeo copy; the node proxy is read-only, so "
          "pushes go direct, through the sidecar, or through the push proxy (plain HTTP in, mTLS out)")
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # keep disk speed out of the figures
    with tempfile.TemporaryDirectory(prefix="meshreg-bench-", dir=base) as work:
        medians = measure(names, size=args.size_mb * MiB, runs=args.runs, work=Path(work))
    for name in names:
        report(name, medians[name])


if __name__ == "__main__":
    main()
