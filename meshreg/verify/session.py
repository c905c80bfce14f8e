"""One verify run's objects: created and remembered, removed at the end even on failure or Ctrl-C (signals wait
while cleaning up); waits for probe Jobs and for the kubelet's pull, each with a deadline and a diagnosis."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from meshreg.cluster import selectors
from meshreg.verify import objects
from meshreg.verify.results import judge_pull, verdict, FAIL
from meshreg.cluster.wait import diagnose, pod_causes
from meshreg.errors import ClusterError
from meshreg.render import labels

FIELD_MANAGER = "meshreg-verify"


@contextmanager
def signals_deferred():
    """Ctrl-C and SIGTERM do not interrupt what runs inside (the cleanup); they are noted and dropped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class Session:
    """What one run created, in order; `cleanup` removes it newest first."""

    def __init__(self, cluster, *, run: str, namespace: str, clock=time.monotonic, sleep=time.sleep):
        self.cluster, self.run, self.namespace = cluster, run, namespace
        self.clock, self.sleep = clock, sleep
        self.created: list[tuple] = []

    def create(self, obj: dict) -> dict:
        live = self.cluster.create(obj, field_manager=FIELD_MANAGER)
        meta = obj["metadata"]
        self.created.append((obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]))
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
            self.sleep(1.0)
        return (f"namespace {self.namespace} is still terminating after {timeout:.0f}s; it goes away by itself "
                f"(kubectl get namespace {self.namespace})")


def sweep(cluster, *, now: datetime | None = None) -> list[str]:
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


def _seconds(progress, elapsed: float) -> str:
    """A running clock on a terminal; piped output gets a line only when something changes."""
    return f" ({elapsed:.0f}s)" if getattr(progress, "live", False) else ""


def job_done(job: dict | None) -> bool:
    status = (job or {}).get("status") or {}
    finished = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    return bool(status.get("succeeded") or status.get("failed") or finished & {"Complete", "Failed"})


def wait_jobs(session, jobs: dict, *, timeout: float, progress, sidecars: dict) -> dict:
    """Poll the Jobs {probe name: (namespace, job name)} until each finished; for the ones that did not within
    `timeout`, why not (pods, events). `sidecars`: probe name -> whether it should have a sidecar."""
    cluster, start = session.cluster, session.clock()
    pending = dict(jobs)
    while pending:
        for probe, (ns, name) in list(pending.items()):
            if job_done(cluster.get("batch/v1", "Job", name, namespace=ns)):
                del pending[probe]
        elapsed = session.clock() - start
        progress.update(f"verify: {len(jobs) - len(pending)} of {len(jobs)} probes finished" + _seconds(progress,
                                                                                                     elapsed))
        if pending and elapsed >= timeout:
            break
        if pending:
            session.sleep(2.0)
    progress.done()
    out = {}
    for probe, (ns, name) in pending.items():
        causes = [c for c in diagnose(cluster=cluster, namespace=ns, workloads=[("batch/v1", "Job", name)])
                  if sidecars.get(probe) or "no istio-proxy sidecar" not in c]
        out[probe] = (f"probe Job {ns}/{name} did not finish in {timeout:.0f}s: "
                      + ("; ".join(causes) or f"no cause found; kubectl -n {ns} describe job {name}"))
    return out


def job_pod(cluster, namespace: str, name: str) -> dict | None:
    """The one pod of a probe Job (backoffLimit 0), found through the Job's own selector."""
    job = cluster.get("batch/v1", "Job", name, namespace=namespace) or {}
    pods = cluster.list("v1", "Pod", namespace=namespace, label_selector=selectors.of(job, {"job-name": name}))
    return pods[-1] if pods else None


def wait_pull(session, exp, *, pod_name: str, timeout: float, progress):
    """Poll the kubelet-pull pod's events until they show the pull or its failure; diagnose a timeout."""
    cluster, ns, start = session.cluster, session.namespace, session.clock()
    while True:
        pod = cluster.get("v1", "Pod", pod_name, namespace=ns)
        events = cluster.list("v1", "Event", namespace=ns, field_selector=f"involvedObject.name={pod_name}")
        found = judge_pull(exp, events=events, pod=pod)
        elapsed = session.clock() - start
        progress.update("verify: waiting for the kubelet to pull" + _seconds(progress, elapsed))
        if found or elapsed >= timeout:
            progress.done()
            if found:
                return found
            causes = pod_causes(pod) if pod else [f"pod {pod_name} is gone"]
            causes = [c for c in causes if "no istio-proxy sidecar" not in c]
            return verdict(exp, FAIL, f"no Pulled event within {timeout:.0f}s: "
                                      + ("; ".join(causes) or f"kubectl -n {ns} describe pod {pod_name}"))
        session.sleep(2.0)
