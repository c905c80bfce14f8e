"""`meshreg gc`: run a registry's gc CronJob now as a Job, follow it, read its result, and wait until the registry
is writable again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from meshreg.cluster import gc as gcs
from meshreg.cluster import wait as waiting
from meshreg.cluster.api import ClusterClient
from meshreg.cluster.gc import GcResult
from meshreg.cluster.wait import Progress
from meshreg.config import Config, Registry
from meshreg.errors import UsageError
from meshreg.render.gc import gc_name

__all__ = ["GcReport", "JobStarted", "collectable", "gc"]

ROLLOUT_TIMEOUT = 600.0  # the registry's last restart, writable again


@dataclass(frozen=True)
class JobStarted:
    """The Job just created from a registry's gc CronJob."""

    namespace: str
    job: str
    cron: str


@dataclass(frozen=True)
class GcReport:
    """How the Job ended, and what its coordinator says it did (None: its result line cannot be read, and why)."""

    namespace: str
    job: str
    state: str  # "Complete" or "Failed"
    result: GcResult | None
    result_error: str  # why `result` is None ("" when it was read)
    registry: str = ""
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """The Job completed and its result, read, has no error."""
        return self.state == "Complete" and self.result is not None and not self.result.get("error")


def collectable(cfg: Config, registry: str | None) -> Registry:
    """The registry `gc` runs for; UsageError when it has no gc (checked before connecting to a cluster)."""
    reg = cfg.get_registry(registry)
    if reg.gc is None:
        raise UsageError(f"{cfg.source}: registry {reg.name} has no gc (add gc: {{schedule: \"0 3 * * 0\"}})")
    return reg


def gc(cfg: Config, cluster: ClusterClient, *, registry: str | None, dry_run: bool, timeout: float,
       progress: Progress, started: Callable[[JobStarted], None] | None = None) -> GcReport:
    """Create the Job from the CronJob (`started` is told at once), follow it for at most `timeout` seconds, read its
    result, and after a real run that completed wait for the registry's writable rollout."""
    reg = collectable(cfg, registry)
    job = gcs.start(cluster=cluster, namespace=cfg.namespace, cron_name=gc_name(reg), dry_run=dry_run)
    name = job["metadata"]["name"]
    if started:
        started(JobStarted(namespace=cfg.namespace, job=name, cron=gc_name(reg)))
    final = gcs.follow(cluster=cluster, namespace=cfg.namespace, name=name, timeout=timeout, progress=progress)
    state = gcs.finished(final) or ""  # follow returns only a finished Job
    result, why = gcs.result(cluster=cluster, namespace=cfg.namespace, job_name=name)
    if state == "Complete" and not dry_run:
        waiting.wait(cluster=cluster, namespace=cfg.namespace, workloads=[("apps/v1", "Deployment", reg.name)],
                     timeout=ROLLOUT_TIMEOUT, progress=progress)
    return GcReport(namespace=cfg.namespace, job=name, state=state, result=result, result_error=why, registry=reg.name,
                    dry_run=dry_run)
