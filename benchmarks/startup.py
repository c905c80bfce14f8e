"""How long meshreg takes to start, beside the interpreter floor and its baselines, in one run on one machine:
`meshreg --help`, `meshreg render` of the default config and of a config with every feature on, each a fresh
process as a user runs it, next to `python -c pass` (the floor), `import click`, `import click, yaml` and
`kubectl kustomize` of the same default base.

    python benchmarks/startup.py [--runs 31]

Every command runs once per round, the rounds interleaved, so a busy machine slows them all alike; the figures
are medians of wall time and of CPU time (user + system, from the kernel's accounting of the child: steadier than
wall time when other jobs share the cores), and each one's ratio to the floor's. Two columns of ratios:

- bytecode: every module, meshreg's too, has its bytecode cached (what `pip install` leaves, and what a second run
  leaves without PYTHONDONTWRITEBYTECODE);
- source: meshreg's own modules compiled from source on every run (an editable install under
  PYTHONDONTWRITEBYTECODE=1), the rest cached.

Each column keeps its bytecode in a cache of its own (PYTHONPYCACHEPREFIX), so the benchmark writes nothing into the
source tree. Targets (issue 27): render of the default <= 3.5x the floor, --help <= 2.5x, every feature <= 5x.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGETS = {"meshreg --help": 2.5, "meshreg render": 3.5, "meshreg render (every feature)": 5.0}

# Every feature at once: several registries (images, readonly on S3 with replicas, a mirror), gc and retention,
# push proxies, runtime config for both runtimes, an ingress with certificate and token clients.
EVERY_FEATURE = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: everything}
spec:
  namespace: registry
  nodeProxy:
    runtimeConfig:
      containerd: {enabled: true}
      crio: {enabled: true}
  registries:
    - name: images
      default: true
      port: 5000
      deleteEnabled: true
      gc: {schedule: "0 3 * * 0", timeZone: Europe/Berlin, deleteUntagged: true}
      retention:
        rules:
          - {repositories: [workspace/], keepNewerThan: 14d}
          - {repositories: ["*"], keepNewest: 10}
        protectedTags: [latest]
      writers: [{serviceAccount: builds/kaniko}, {serviceAccount: team-a/builder, repositories: [team-a/]}]
      pushProxy: {repositories: [dev/]}
    - name: releases
      role: readonly
      publisher: ci/loader
      port: 5001
      storage: {s3: {bucket: releases, region: eu-central-1, credentialsSecret: releases-s3}}
      replicas: 2
    - name: cache
      role: mirror
      port: 5002
      mirror: {upstream: "https://ghcr.io", credentialsSecret: ghcr}
  ingress:
    host: registry.example.com
    credentialName: registry-tls
    registry: images
    issuers:
      - {issuer: "https://token.actions.githubusercontent.com", audiences: [registry.example.com],
         jwksUri: "https://token.actions.githubusercontent.com/.well-known/jwks"}
    clients:
      - {name: loader, method: mtls, repositories: [images/]}
      - {name: app-ci, method: jwt, issuer: "https://token.actions.githubusercontent.com",
         subject: "repo:acme/app:ref:refs/heads/*", repositories: [acme/app/]}
"""


@dataclass
class Case:
    label: str
    argv: list[str]
    wall: dict[str, list[float]] = field(default_factory=dict)  # column -> seconds per run
    cpu: dict[str, list[float]] = field(default_factory=dict)


def meshreg_command() -> list[str]:
    """The `meshreg` console script beside this Python, as a user runs it; else `python -m meshreg`."""
    script = pathlib.Path(sys.executable).parent / "meshreg"
    if not script.exists():
        return [sys.executable, "-m", "meshreg"]
    stale = stale_script(script)
    if stale:
        sys.exit(stale)
    return [str(script)]


def stale_script(script: pathlib.Path) -> str | None:
    """Why the console script does not run what pyproject.toml names (an install older than the code), if so: an
    editable install keeps the script it was installed with, and an old one skips what the entry point does."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: not checked
        return None
    wanted = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["meshreg"]
    module, _, function = wanted.partition(":")
    if f"from {module} import {function}" in script.read_text(errors="replace"):
        return None
    return (f"{script} does not run {wanted}, which pyproject.toml names: the install is older than the code; "
            f"run `pip install -e .` (or install meshreg again) and measure again")


def cases(workdir: pathlib.Path) -> list[Case]:
    meshreg = meshreg_command()
    out = [Case("python -c pass (floor)", [sys.executable, "-c", "pass"]),
           Case("import click", [sys.executable, "-c", "import click"]),
           Case("import click, yaml", [sys.executable, "-c", "import click, yaml"])]
    kubectl = shutil.which("kubectl") or str(pathlib.Path(sys.executable).parent / "kubectl")
    if os.access(kubectl, os.X_OK):
        out.append(Case("kubectl kustomize (default base)", [kubectl, "kustomize", str(ROOT / "kustomize/base")]))
    return out + [Case("meshreg --help", [*meshreg, "--help"]),
                  Case("meshreg render", [*meshreg, "render"]),
                  Case("meshreg render (every feature)", [*meshreg, "render", "-c", str(workdir / "every.yaml")])]


def run_once(argv: list[str], *, env: dict[str, str], cwd: pathlib.Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run, which must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read() if proc.stderr else b""
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(argv)}\n{stderr.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def environments(cache: pathlib.Path) -> dict[str, dict[str, str]]:
    """One environment per column, each with its own bytecode cache."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MESHREG_", "PYTHON"))}
    return {column: {**base, "PYTHONPYCACHEPREFIX": str(cache / column), "PYTHONDONTWRITEBYTECODE": "1"}
            for column in ("bytecode", "source")}


def fill_caches(all_cases: list[Case], envs: dict[str, dict[str, str]], cwd: pathlib.Path) -> None:
    """Run every case once writing bytecode into each column's cache; then drop meshreg's from the source one."""
    for env in envs.values():
        writing = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        for case in all_cases:
            run_once(case.argv, env=writing, cwd=cwd)
    source_cache = pathlib.Path(envs["source"]["PYTHONPYCACHEPREFIX"])
    package = (ROOT / "meshreg").resolve()
    dropped = source_cache / package.relative_to(package.anchor)
    if not dropped.is_dir():
        sys.exit(f"no bytecode of meshreg under {source_cache}: is meshreg imported from {package}?")
    shutil.rmtree(dropped)


def measure(all_cases: list[Case], envs: dict[str, dict[str, str]], *, runs: int, cwd: pathlib.Path) -> None:
    for i in range(runs):
        order = all_cases if i % 2 == 0 else list(reversed(all_cases))
        for column, env in envs.items():
            for case in order:
                wall, cpu = run_once(case.argv, env=env, cwd=cwd)
                case.wall.setdefault(column, []).append(wall)
                case.cpu.setdefault(column, []).append(cpu)


def report(all_cases: list[Case], *, runs: int) -> None:
    floor = all_cases[0]
    print(f"start-up, median of {runs} interleaved runs each; ratios to the floor (python -c pass) in the same run; "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'':<34}{'bytecode cached':^36}{'meshreg from source':^36}")
    print(f"{'command':<34}" + f"{'wall':>9}{'x':>7}{'cpu':>9}{'x':>7}    " * 2 + "target")
    for case in all_cases:
        cells = ""
        for column in ("bytecode", "source"):
            wall, cpu = (statistics.median(case.wall[column]), statistics.median(case.cpu[column]))
            wall_x = wall / statistics.median(floor.wall[column])
            cpu_x = cpu / statistics.median(floor.cpu[column])
            cells += f"{wall * 1000:>7.0f}ms{wall_x:>6.2f}x{cpu * 1000:>7.0f}ms{cpu_x:>6.2f}x    "
        target = TARGETS.get(case.label)
        verdict = ""
        if target:
            worst = max(statistics.median(case.wall["bytecode"]) / statistics.median(floor.wall["bytecode"]),
                        statistics.median(case.cpu["bytecode"]) / statistics.median(floor.cpu["bytecode"]))
            verdict = f"<= {target}x  {'ok' if worst <= target else 'MISSED'}"
        print(f"{case.label:<34}{cells}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=31)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        (workdir / "every.yaml").write_text(EVERY_FEATURE)
        # the ingress's client CA, which reading the config loads (not timed)
        subprocess.run([*meshreg_command(), "certs", "init", "-c", "every.yaml"], cwd=workdir, check=True,
                       capture_output=True)
        all_cases = cases(workdir)
        envs = environments(workdir / "pycache")
        fill_caches(all_cases, envs, workdir)
        measure(all_cases, envs, runs=args.runs, cwd=workdir)
    report(all_cases, runs=args.runs)


if __name__ == "__main__":
    main()
