"""`meshreg gc` and the gc part of `status`: run a registry's gc CronJob now, follow the Job (watching it), read its
result from the coordinator's log, and find the last run and the volume's usage."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any, TypedDict, cast

from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.wait import Progress
from meshreg.cluster.watching import Source, pause, watch
from meshreg.errors import ClusterError, UsageError
from meshreg.render.gc import CONTAINER

RESULT = "MESHREG-GC-RESULT "  # the line meshreg.gcjob.run prints (not imported: it loads urllib and ssl)
JOB_NAME = ("batch.kubernetes.io/job-name", "job-name")  # pod labels naming their Job (new, then old)
# The Job's read-only switch, as meshreg.gcjob.kube applies it (not imported, as above)
READ_ONLY = "REGISTRY_STORAGE_MAINTENANCE_READONLY"
SWITCH_MANAGER = "meshreg-gc"


class RetentionEntry(TypedDict):
    """What retention deleted (or would delete) in one repository."""

    repository: str
    tags: list[str]
    manifests: list[str]


class Blobs(TypedDict, total=False):
    """What garbage-collect deleted (or would delete): how many blobs, their bytes, how many of unknown size."""

    count: int
    bytes: int
    unknownSize: int


class Window(TypedDict, total=False):
    """When the registry stopped and started taking writes, in seconds since the epoch (the coordinator's clock)."""

    readOnlyFrom: float  # the switch to read-only was sent
    readOnlyServing: float  # every registry pod serves read-only
    writableFrom: float  # the switch was withdrawn (the writable pods start)


class GcResult(TypedDict, total=False):
    """The result line of a gc Job's coordinator (meshreg.gcjob.run), as JSON; keys absent where a step did not run."""

    dryRun: bool
    deployment: str  # namespace/name of the registry's Deployment
    retention: list[RetentionEntry]
    untaggedManifests: int
    untaggedKept: list[str]  # repository@digest a tagged index lists
    blobs: Blobs
    readOnly: str | None  # "switching", "on", "restored" or "stuck"
    window: Window
    error: str


def job_from(cron: Object, *, dry_run: bool, now: float) -> Object:
    """A Job from the CronJob's template, as `kubectl create job --from=cronjob/NAME` makes it."""
    meta = cron["metadata"]
    template = copy.deepcopy(cron["spec"]["jobTemplate"])
    if dry_run:
        for container in template["spec"]["template"]["spec"]["containers"]:
            if container["name"] == CONTAINER:
                container.setdefault("env", []).append({"name": "MESHREG_GC_DRY_RUN", "value": "true"})
    labels = (template.get("metadata") or {}).get("labels") or {}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"{meta['name']}-{'dry-run' if dry_run else 'manual'}-{int(now)}",
                         "namespace": meta["namespace"], "labels": labels,
                         "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": meta["name"],
                                              "uid": meta["uid"], "controller": True}]},
            "spec": template["spec"]}


def start(*, cluster: ClusterClient, namespace: str, cron_name: str, dry_run: bool,
          now: Callable[[], float] = time.time) -> Object:
    """Create the Job now; UsageError when the CronJob is not deployed."""
    cron = cluster.get("batch/v1", "CronJob", cron_name, namespace=namespace)
    if cron is None:
        raise UsageError(f"CronJob {namespace}/{cron_name} is not on {cluster.server}: run meshreg up first")
    return cluster.apply(job_from(cron, dry_run=dry_run, now=now()))


def finished(job: Object) -> str | None:
    """'Complete' or 'Failed' once the Job is done, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def follow(*, cluster: ClusterClient, namespace: str, name: str, timeout: float, progress: Progress,
           interval: float = 2.0, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] | None = None) -> Object:
    """Watch the Job until it completes or fails; ClusterError on timeout. The final Job. The progress line is
    refreshed on every change and at least every `interval` seconds; `sleep` (tests) replaces waiting for a
    change."""
    start_time = clock()
    source = Source("batch/v1", "Job", namespace, name=name)
    with watch(cluster, [source], sleep=sleep) as watcher:
        while True:
            job = watcher.get(source)
            if job is None:
                raise ClusterError(f"Job {namespace}/{name} disappeared while running")
            state = finished(job)
            status = job.get("status") or {}
            elapsed = clock() - start_time
            progress.update(f"Job {name}: {state or ('running' if status.get('active') else 'starting')} "
                            f"({elapsed:.0f}s)")
            if state:
                progress.done()
                return job
            if elapsed >= timeout:
                progress.done()
                raise ClusterError(f"Job {namespace}/{name} did not finish in {timeout:.0f}s; it keeps running: "
                                   f"kubectl -n {namespace} logs job/{name} -c {CONTAINER} -f")
            pause(watcher, sleep)(min(interval, max(timeout - elapsed, 0.1)))


def pods_of(cluster: ClusterClient, namespace: str, job_name: str) -> list[Object]:
    """The pods of a Job, by whichever label names it."""
    for label in JOB_NAME:
        pods = cluster.list("v1", "Pod", namespace=namespace, label_selector=f"{label}={job_name}")
        if pods:
            return pods
    return []


def result(*, cluster: ClusterClient, namespace: str, job_name: str) -> tuple[GcResult | None, str]:
    """The coordinator's result line from the Job's newest pod that has one, or None and why not."""
    pods = sorted(pods_of(cluster, namespace, job_name), key=lambda p: p["metadata"].get("creationTimestamp", ""))
    why = "no pod of the Job is left"
    for pod in reversed(pods):
        try:
            text = cluster.log(pod["metadata"]["name"], namespace=namespace, container=CONTAINER, tail=2000)
        except ClusterError as e:  # e.g. no kubelet answers for the node
            why = str(e)
            continue
        found = parse_result(text or "")
        if found is not None:
            return found, ""
        why = "the log has no result line" if text is not None else "the pod's log is gone"
    return None, why


def parse_result(text: str) -> GcResult | None:
    """The last result line in a log; None when there is none, or it is not JSON."""
    lines = [line for line in text.splitlines() if line.startswith(RESULT)]
    if not lines:
        return None
    try:
        return cast(GcResult, json.loads(lines[-1][len(RESULT):]))
    except ValueError:
        return None


def last_run(*, cluster: ClusterClient, namespace: str, cron_name: str, selector: str) -> dict[str, Any]:
    """The CronJob's last schedule and success, and the newest of its Jobs (scheduled or manual) with its state."""
    cron = cluster.get("batch/v1", "CronJob", cron_name, namespace=namespace)
    if cron is None:
        return {"deployed": False}
    status = cron.get("status") or {}
    jobs = [j for j in cluster.list("batch/v1", "Job", namespace=namespace, label_selector=selector)
            if any(o.get("name") == cron_name for o in j["metadata"].get("ownerReferences") or [])]
    return {"deployed": True, "schedule": cron["spec"].get("schedule"), "lastSchedule": status.get("lastScheduleTime"),
            "lastSuccess": status.get("lastSuccessfulTime"), "lastJob": _newest(jobs)}


def _newest(jobs: list[Object]) -> dict[str, Any] | None:
    """The newest Job: its name, state (Complete, Failed or Running) and times; None when there is none."""
    if not jobs:
        return None
    job = max(jobs, key=lambda j: j["metadata"].get("creationTimestamp", ""))
    status = job.get("status") or {}
    return {"name": job["metadata"]["name"], "state": finished(job) or "Running",
            "started": status.get("startTime"), "completed": status.get("completionTime")}


def read_only(deployment: Object | None) -> bool:
    """Whether the registry's pods run (or are being rolled out) with the gc Job's read-only switch."""
    spec = (((deployment or {}).get("spec") or {}).get("template") or {}).get("spec") or {}
    return any(e.get("name") == READ_ONLY for c in spec.get("containers") or [] if c.get("name") == "registry"
               for e in c.get("env") or [])


def running(*, cluster: ClusterClient, namespace: str, cron_name: str, selector: str) -> list[str]:
    """The gc Jobs of a CronJob (scheduled or manual) whose coordinator is still at work: not finished, and no pod
    whose `gc` container ended (one killed outright, SIGKILL, leaves its Job running until the deadline)."""
    jobs = [j["metadata"]["name"] for j in cluster.list("batch/v1", "Job", namespace=namespace,
                                                         label_selector=selector)
            if any(o.get("name") == cron_name for o in j["metadata"].get("ownerReferences") or [])
            and finished(j) is None]
    return sorted(job for job in jobs if not _coordinator_ended(cluster, namespace, job))


def _coordinator_ended(cluster: ClusterClient, namespace: str, job: str) -> bool:
    pods = pods_of(cluster, namespace, job)
    states = [s.get("state") or {} for p in pods for s in (p.get("status") or {}).get("containerStatuses") or []
              if s.get("name") == CONTAINER]
    return bool(states) and all("terminated" in state for state in states)


def left_read_only(*, cluster: ClusterClient, namespace: str, registry: str, cron_name: str,
                   selector: str) -> str | None:
    """Why the registry is read-only with no gc Job running to undo it (an earlier Job's pod was killed before it
    could), or None when it is writable or a Job is running."""
    if not read_only(cluster.get("apps/v1", "Deployment", registry, namespace=namespace)):
        return None
    if running(cluster=cluster, namespace=namespace, cron_name=cron_name, selector=selector):
        return None
    return (f"registry {namespace}/{registry} is read-only, and no gc Job is running to make it writable again "
            "(the last one was stopped before it could)")


def make_writable(*, cluster: ClusterClient, namespace: str, registry: str) -> None:
    """Withdraw the gc Job's switch, as the Job would: apply its field manager's part of the Deployment empty."""
    withdrawn = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": registry, "namespace": namespace},
                 "spec": {"template": {"spec": {"containers": [{"name": "registry"}]}}}}
    cluster.apply(withdrawn, force=True, field_manager=SWITCH_MANAGER)
