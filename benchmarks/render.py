"""Times `meshreg render` end to end (a fresh process, as a user runs it) for the default and a large config, and
reports the largest rendered object at 1,000, 10,000 and 50,000 writers (policies are split to stay under 512 KiB).

Run: python benchmarks/render.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = 7


def large_config(writers: int = 1000, prefixes: int = 100) -> str:
    lines = ["apiVersion: meshreg.dev/v1alpha1", "kind: MeshRegistry", "metadata: {name: large}", "spec:",
             "  writers:"]
    for i in range(writers):
        scope = '["*"]' if i % 10 == 0 else f'["team-{i % prefixes:03d}/"]'
        lines.append(f"    - {{serviceAccount: ns-{i % 50}/builder-{i}, repositories: {scope}}}")
    return "\n".join(lines) + "\n"


def time_render(args: list[str], cwd: str) -> tuple[float, bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHREG_")}
    times, out = [], b""
    for _ in range(RUNS):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "meshreg", "render", *args], cwd=cwd, env=env,
                             capture_output=True, check=True).stdout
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "large.yaml")
        with open(path, "w") as f:
            f.write(large_config())
        print(f"{'case':<32}{'median s':>10}{'objects':>9}{'bytes':>10}")
        for label, args in (("default (no config)", []), ("1,000 writers, 100 prefixes", ["-c", path])):
            seconds, out = time_render(args, tmp)
            objects = out.count(b"\nkind: ") + out.startswith(b"kind: ")
            print(f"{label:<32}{seconds:>10.3f}{objects:>9}{len(out):>10}")
        previous = None
        for n in (250, 500, 1000, 2000):
            with open(path, "w") as f:
                f.write(large_config(writers=n))
            _, out = time_render(["-c", path], tmp)
            step = f", +{(len(out) - previous[1]) / (n - previous[0]):.0f} bytes per added writer" if previous else ""
            print(f"policy growth: {n:>5} writers -> {len(out):>8} bytes{step}")
            previous = (n, len(out))
        largest_objects()


def largest_objects() -> None:
    """The largest object (compact JSON, as sent to the API server) and the policy count, per writer count."""
    from meshreg import config, render
    from meshreg.render import policysize

    limit = policysize.MAX_OBJECT_BYTES
    print(f"{'writers':>8}{'render s':>10}{'policies':>10}{'largest object':>16}  (limit {limit})")
    for n in (1000, 10_000, 50_000):
        cfg = config.from_text(large_config(writers=n), name="large.yaml")
        start = time.perf_counter()
        objects = render.render(cfg)
        seconds = time.perf_counter() - start
        policies = [o for o in objects if o["kind"] == "AuthorizationPolicy"]
        print(f"{n:>8}{seconds:>10.2f}{len(policies):>10}{max(policysize.size(o) for o in objects):>16}")


if __name__ == "__main__":
    main()
