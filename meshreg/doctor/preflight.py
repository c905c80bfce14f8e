"""Checks before `up` writes anything: the doctor checks that can FAIL before a deployment (doctor.PREFLIGHT).
A FAIL stops `up` before its first write; WARN lines come back for `up` to print."""

from __future__ import annotations

from meshreg import doctor
from meshreg.doctor.facts import Facts
from meshreg.errors import ClusterError


def preflight(*, cluster, cfg, manifests) -> list[str]:
    """Run the preflight checks; the WARN lines back, or ClusterError naming every FAIL."""
    try:
        results = doctor.run(facts=Facts(cluster, cfg, manifests), groups=doctor.PREFLIGHT)
    except doctor.Unreachable as e:
        raise ClusterError(str(e)) from e
    failures = doctor.failed(results)
    if failures:
        found = "; ".join(f"{r.check}: {r.message} ({r.fix})" for r in failures)
        raise ClusterError(f"preflight found {len(failures)} problem(s), nothing was applied: {found} "
                           "(meshreg doctor says what to do about each; --skip-checks goes ahead anyway)")
    return [f"{r.check}: {r.message} ({r.fix})" for r in results if r.status == doctor.WARN]
