"""`meshreg status`: what is deployed, whether it matches the config, whether it is ready, and where to push/pull."""

from __future__ import annotations

from meshreg import render as rendering
from meshreg import status as statuses
from meshreg.cluster.api import ClusterClient, Object
from meshreg.config import Config
from meshreg.status.report import StatusReport

__all__ = ["status"]


def status(cfg: Config, cluster: ClusterClient, *, manifests: list[Object] | None = None) -> StatusReport:
    """The status of what `cfg` renders (`manifests`, when the caller has rendered it already) on the cluster."""
    return statuses.report(cluster, cfg, manifests=rendering.render(cfg) if manifests is None else manifests)
