"""`meshreg verify`: the self-test in the cluster, run to its end or to an interruption, as a VerifyReport."""

from __future__ import annotations

from meshreg import verify as verifying
from meshreg.cluster.api import ClusterClient
from meshreg.cluster.wait import Progress
from meshreg.config import Config
from meshreg.config.names import check_identity
from meshreg.errors import UsageError
from meshreg.verify import VerifyReport
from meshreg.verify.placement import ANYWHERE, Placement


def verify(cfg: Config, cluster: ClusterClient, *, image: str | None, as_identity: str | None, node: str | None,
           timeout: float, progress: Progress, placement: Placement = ANYWHERE) -> VerifyReport:
    """Run every phase and remove every probe. Ctrl-C or SIGTERM stops the run after its cleanup: the report then
    says `interrupted` (its notes what was removed). A bad `as_identity` is a UsageError, before any request."""
    _check_writer(cfg, as_identity)
    with verifying.sigterm_interrupts():
        try:
            return verifying.run(cluster=cluster, cfg=cfg, image=image or verifying.DEFAULT_IMAGE,
                                 as_identity=as_identity, node=node, timeout=timeout, progress=progress,
                                 placement=placement)
        except verifying.Interrupted as e:
            return e.report


def _check_writer(cfg: Config, identity: str | None) -> None:
    """--as must name NS/SA, and a writer of one of the registries."""
    if identity is None:
        return
    problem = check_identity(identity)
    if problem:
        raise UsageError(f"--as {identity}: {problem}")
    if identity and not any(w.service_account == identity for r in cfg.registries for w in cfg.writers_of(r)):
        raise UsageError(f"--as {identity}: not a writer of any registry in {cfg.source} (meshreg policy list)")
