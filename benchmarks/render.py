"""Times `meshreg render` end to end (a fresh process, as a user runs it) for the default and a large config.

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


if __name__ == "__main__":
    main()
