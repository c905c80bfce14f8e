"""One verify run's objects: created and remembered, removed at the end even on failure or Ctrl-C (signals wait
while cleaning up: meshreg.verify.signals); waits, watching, for probe Jobs and for the kubelet's pull, each with a
deadline and a diagnosis."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from meshreg.cluster import selectors
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.errors import ApiError
from meshreg.cluster.wait import Progress, diagnose, pod_causes
from meshreg.cluster.watching import Source, pause, watch
from meshreg.errors import ClusterError
from meshreg.render import labels
from meshreg.verify import objects
from meshreg.verify.plan import Expectation
from meshreg.verify.results import FAIL, Verdict, judge_pull, verdict

FIELD_MANAGER = "meshreg-verify"
INTERVAL = 2.0  # seconds between refreshes of the progress line while nothing changes


class Session:
    """What one run created, in order; `cleanup` removes it newest first."""

    def __init__(self, cluster: ClusterClient, *, run: str, namespace: str,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] | None = None):
        """`sleep` (tests) replaces waiting for the next change in the waits, and the pause while a namespace
        goes."""
        self.cluster, self.run, self.namespace = cluster, run, namespace
        self.clock, self.sleep = clock, sleep
        self.created: list[tuple[str, str, str | None, str]] = []  # (apiVersion, kind, namespace, name)

    def create(self, obj: Object) -> Object:
        meta = obj["metadata"]
        try:
            live = self.cluster.create(obj, field_manager=FIELD_MANAGER)
        except ApiError as e:
            live = self._created_already(obj, e)
        self.created.append((obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]))
        return live

    def _created_already(self, obj: Object, error: ApiError) -> Object:
        """The object, when a create answered AlreadyExists for one this run made: a request the server carried
        out although its answer was lost on the way (names carry the run id, so nothing else has them)."""
        meta = obj["metadata"]
        if (error.status or {}).get("reason") != "AlreadyExists":
            raise error
        live = self.cluster.get(obj["apiVersion"], obj["kind"], meta["name"], namespace=meta.get("namespace"))
        if live is None or (live["metadata"].get("labels") or {}).get(objects.RUN) != self.run:
            raise error
        return live

    def cleanup(self, *, timeout: float) -> list[str]:
        """Delete everything created (objects in the temporary namespace go with it); say what stays."""
        notes = []
        for api_version, kind, ns, name in reversed(self.created):
            if ns == self.namespace:
                continue
            try:
                self.cluster.delete(api_version, kind, name, namespace=ns, propagation="Background")
            except ClusterError as e:
                notes.append(f"could not delete {kind} {ns + '/' if ns else ''}{name} ({e}); delete it with "
                              f"kubectl delete {kind.lower()} -l {objects.RUN}={self.run} -A")
        if any(k == "Namespace" for _, k, _, _ in self.created):
            notes.append(self._gone(timeout))
        return notes

    def _gone(self, timeout: float) -> str:
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            if self.cluster.get("v1", "Namespace", self.namespace) is None:
                return f"removed namespace {self.namespace} and the probes"
            (self.sleep or time.sleep)(1.0)
        return (f"namespace {self.namespace} is still terminating after {timeout:.0f}s; it goes away by itself "
                f"(kubectl get namespace {self.namespace})")


def sweep(cluster: ClusterClient, *, now: datetime | None = None) -> list[str]:
    """Delete temporary namespaces of earlier runs that were interrupted too hard to clean up, once expired."""
    now = now or datetime.now(timezone.utc)
    notes = []
    selector = labels.selector(objects.MANAGED_BY)
    for ns in cluster.list("v1", "Namespace", label_selector=selector):
        expires = (ns["metadata"].get("annotations") or {}).get(objects.EXPIRES, "")
        try:
            expired = datetime.fromisoformat(expires.replace("Z", "+00:00")) < now
        except ValueError:
            expired = False
        if expired and cluster.delete("v1", "Namespace", ns["metadata"]["name"]):
            notes.append(f"removed namespace {ns['metadata']['name']} left by an earlier run")
    return notes


def _seconds(progress: Progress, elapsed: float) -> str:
    """A running clock on a terminal; piped output gets a line only when something changes."""
    return f" ({elapsed:.0f}s)" if getattr(progress, "live", False) else ""


def job_done(job: Object | None) -> bool:
    status = (job or {}).get("status") or {}
    finished = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    return bool(status.get("succeeded") or status.get("failed") or finished & {"Complete", "Failed"})


def wait_jobs(session: Session, jobs: dict[str, tuple[str, str]], *, timeout: float, progress: Progress,
              sidecars: dict[str, bool]) -> dict[str, str]:
    """Watch the Jobs {probe name: (namespace, job name)} until each finished; for the ones that did not within
    `timeout`, why not (pods, events). `sidecars`: probe name -> whether it should have a sidecar."""
    pending = _unfinished(session, jobs, timeout=timeout, progress=progress)
    return {probe: _not_finished(session.cluster, (ns, name), timeout=timeout, sidecar=sidecars.get(probe, False))
            for probe, (ns, name) in pending.items()}


def _unfinished(session: Session, jobs: dict[str, tuple[str, str]], *, timeout: float,
                progress: Progress) -> dict[str, tuple[str, str]]:
    """Watch the Jobs until each finished or `timeout` passed; the Jobs that did not finish."""
    start = session.clock()
    sources = {probe: Source("batch/v1", "Job", ns, name=name) for probe, (ns, name) in jobs.items()}
    pending = dict(jobs)
    with watch(session.cluster, list(sources.values()), sleep=session.sleep) as watcher:
        while pending:
            for probe in [p for p in pending if job_done(watcher.get(sources[p]))]:
                del pending[probe]
            elapsed = session.clock() - start
            progress.update(f"verify: {len(jobs) - len(pending)} of {len(jobs)} probes finished"
                            + _seconds(progress, elapsed))
            if pending and elapsed >= timeout:
                break
            if pending:
                pause(watcher, session.sleep)(min(INTERVAL, max(timeout - elapsed, 0.1)))
    progress.done()
    return pending


def _not_finished(cluster: ClusterClient, job: tuple[str, str], *, timeout: float, sidecar: bool) -> str:
    """Why a probe Job (namespace, name) did not finish in time (a missing sidecar only counts for a probe that
    should have one)."""
    ns, name = job
    causes = [c for c in diagnose(cluster=cluster, namespace=ns, workloads=[("batch/v1", "Job", name)])
              if sidecar or "no istio-proxy sidecar" not in c]
    return (f"probe Job {ns}/{name} did not finish in {timeout:.0f}s: "
            + ("; ".join(causes) or f"no cause found; kubectl -n {ns} describe job {name}"))


def job_pod(cluster: ClusterClient, namespace: str, name: str) -> Object | None:
    """The one pod of a probe Job (backoffLimit 0), found through the Job's own selector."""
    job = cluster.get("batch/v1", "Job", name, namespace=namespace) or {}
    pods = cluster.list("v1", "Pod", namespace=namespace, label_selector=selectors.of(job, {"job-name": name}))
    return pods[-1] if pods else None


def wait_pull(session: Session, exp: Expectation, *, pod_name: str, timeout: float, progress: Progress) -> Verdict:
    """Watch the kubelet-pull pod and its events until they show the pull or its failure; diagnose a timeout."""
    ns, start = session.namespace, session.clock()
    pod_source = Source("v1", "Pod", ns, name=pod_name)
    events = Source("v1", "Event", ns, field_selector=f"involvedObject.name={pod_name}")
    with watch(session.cluster, [pod_source, events], sleep=session.sleep) as watcher:
        while True:
            pod = watcher.get(pod_source)
            found = judge_pull(exp, events=watcher.items(events), pod=pod)
            elapsed = session.clock() - start
            progress.update("verify: waiting for the kubelet to pull" + _seconds(progress, elapsed))
            if found or elapsed >= timeout:
                progress.done()
                return found or _no_pull(exp, pod, pod_name=pod_name, namespace=ns, timeout=timeout)
            pause(watcher, session.sleep)(min(INTERVAL, max(timeout - elapsed, 0.1)))


def _no_pull(exp: Expectation, pod: Object | None, *, pod_name: str, namespace: str, timeout: float) -> Verdict:
    causes = pod_causes(pod) if pod else [f"pod {pod_name} is gone"]
    causes = [c for c in causes if "no istio-proxy sidecar" not in c]
    return verdict(exp, FAIL, f"no Pulled event within {timeout:.0f}s: "
                              + ("; ".join(causes) or f"kubectl -n {namespace} describe pod {pod_name}"))
