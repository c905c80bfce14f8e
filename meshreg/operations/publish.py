"""`--apply` of the commands that edit local files (policy grant and revoke, certs revoke): server-side apply just
the objects they changed, not the whole render."""

from __future__ import annotations

from meshreg.cluster import apply as applying
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.outcomes import Outcome

__all__ = ["publish"]


def publish(manifests: list[Object], cluster: ClusterClient) -> list[Outcome]:
    """Apply `manifests` (checked first with a server-side dry run, as `up` does); one Outcome per object."""
    return applying.apply(manifests=manifests, cluster=cluster)
