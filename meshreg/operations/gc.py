"""`meshreg gc`: run a registry's gc CronJob now as a Job, follow it, read its result, and wait until the registry
is writable again. Before that: refuse while another gc Job of the registry runs, and make the registry writable
when an earlier Job was killed before it could (then say so)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from meshreg.cluster import gc as gcs
from meshreg.cluster import wait as waiting
from meshreg.cluster.api import ClusterClient
from meshreg.cluster.gc import GcResult
from meshreg.cluster.wait import Progress
from meshreg.config import Config, Registry
from meshreg.errors import ClusterError, UsageError
from meshreg.render import labels
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
    writable_at: float | None = None  # when the registry served writable again (seconds since the epoch); None:
    # not waited for (a dry run, or the switch was never made or could not be withdrawn)
    recovered: str | None = None  # an earlier Job's read-only switch this run withdrew first, and why

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
       progress: Progress, started: Callable[[JobStarted], None] | None = None,
       clock: Callable[[], float] = time.time) -> GcReport:
    """Create the Job from the CronJob (`started` is told at once), follow it for at most `timeout` seconds, read its
    result, and after a real run wait until the registry serves writable again."""
    reg = collectable(cfg, registry)
    recovered = _recover(cfg, cluster, reg, dry_run=dry_run, progress=progress)
    job = gcs.start(cluster=cluster, namespace=cfg.namespace, cron_name=gc_name(reg), dry_run=dry_run)
    name = job["metadata"]["name"]
    if started:
        started(JobStarted(namespace=cfg.namespace, job=name, cron=gc_name(reg)))
    final = gcs.follow(cluster=cluster, namespace=cfg.namespace, name=name, timeout=timeout, progress=progress)
    state = gcs.finished(final) or ""  # follow returns only a finished Job
    result, why = gcs.result(cluster=cluster, namespace=cfg.namespace, job_name=name)
    writable_at = None
    if not dry_run and (result or {}).get("readOnly") == "restored":
        waiting.wait(cluster=cluster, namespace=cfg.namespace, workloads=[("apps/v1", "Deployment", reg.name)],
                     timeout=ROLLOUT_TIMEOUT, progress=progress)
        writable_at = clock()
    return GcReport(namespace=cfg.namespace, job=name, state=state, result=result, result_error=why, registry=reg.name,
                    dry_run=dry_run, writable_at=writable_at, recovered=recovered)


def _recover(cfg: Config, cluster: ClusterClient, reg: Registry, *, dry_run: bool, progress: Progress) -> str | None:
    """Refuse while a gc Job of `reg` runs (two would switch the registry under each other); make the registry
    writable when an earlier Job left it read-only (unless `dry_run`, which only says so)."""
    selector = labels.selector({labels.REGISTRY: reg.name, labels.COMPONENT: "gc"})
    busy = gcs.running(cluster=cluster, namespace=cfg.namespace, cron_name=gc_name(reg), selector=selector)
    if busy:
        raise ClusterError(f"gc Job {cfg.namespace}/{busy[0]} of registry {reg.name} is still running; wait for it "
                           f"(kubectl -n {cfg.namespace} logs job/{busy[0]} -c gc -f) or delete it (the registry is "
                           "made writable again when its pod stops)")
    stuck = gcs.left_read_only(cluster=cluster, namespace=cfg.namespace, registry=reg.name,
                               cron_name=gc_name(reg), selector=selector)
    if stuck is None:
        return None
    if dry_run:
        return f"{stuck}; run meshreg gc without --dry-run to make it writable again"
    gcs.make_writable(cluster=cluster, namespace=cfg.namespace, registry=reg.name)
    waiting.wait(cluster=cluster, namespace=cfg.namespace, workloads=[("apps/v1", "Deployment", reg.name)],
                 timeout=ROLLOUT_TIMEOUT, progress=progress)
    return f"{stuck}: made it writable again first"
