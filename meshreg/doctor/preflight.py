"""Checks before `up` writes anything: the doctor checks that can FAIL before a deployment (doctor.PREFLIGHT).
A FAIL stops `up` before its first write; WARN lines come back for `up` to print."""

from __future__ import annotations

from meshreg.cluster.api import ClusterClient, Object
from meshreg.config import Config
from meshreg.doctor.checks import PREFLIGHT, Unreachable, run
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import WARN, failed
from meshreg.errors import ClusterError


def preflight(*, cluster: ClusterClient, cfg: Config, manifests: list[Object]) -> list[str]:
    """Run the preflight checks; the WARN lines back, or ClusterError naming every FAIL."""
    try:
        results = run(facts=Facts(cluster, cfg, manifests, dry_run_follows=True), groups=PREFLIGHT)
    except Unreachable as e:
        raise ClusterError(str(e)) from e
    failures = failed(results)
    if failures:
        found = "; ".join(f"{r.check}: {r.message} ({r.fix})" for r in failures)
        raise ClusterError(f"preflight found {len(failures)} problem(s), nothing was applied: {found} "
                           "(meshreg doctor says what to do about each; --skip-checks goes ahead anyway)")
    return [f"{r.check}: {r.message} ({r.fix})" for r in results if r.status == WARN]
