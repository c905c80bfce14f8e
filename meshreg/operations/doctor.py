"""`meshreg doctor`: every check group (or the ones asked for) against one cluster, as a DoctorReport."""

from __future__ import annotations

from meshreg import doctor as doctoring
from meshreg.cluster.api import ClusterClient, Object
from meshreg.config import Config
from meshreg.doctor import DoctorReport, Facts
from meshreg.render import render


def doctor(cfg: Config, cluster: ClusterClient, *, checks: tuple[str, ...] | None,
           manifests: list[Object] | None = None) -> DoctorReport:
    """Run the checks (None: all of them) read-only; raises doctor.Unreachable when the API server does not answer.
    `manifests`: the render of `cfg` when the caller has it already (rendered here otherwise)."""
    facts = Facts(cluster, cfg, render(cfg) if manifests is None else manifests)
    results = doctoring.run(facts=facts, groups=checks)
    return DoctorReport(server=cluster.server, config=cfg.source, namespace=cfg.namespace, results=tuple(results))
