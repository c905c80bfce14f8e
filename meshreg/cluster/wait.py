"""Wait for the registry and node-proxy rollouts, watching them, with a live progress line; on timeout, say why from
pods and events."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from meshreg.cluster import crashes, selectors
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.enforcement import has_sidecar
from meshreg.cluster.watching import Source, pause, watch
from meshreg.errors import ClusterError

CLOCK = re.compile(r" \(\d+s\)$")  # the elapsed time a progress line may end with
PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")

Workload = tuple[str, str, str]  # (apiVersion, kind, name)


class Progress:
    """One status line on stderr: rewritten in place on a TTY (so a trailing clock, ` (12s)`, keeps moving), plain
    lines when piped or NO_COLOR, and then only when what it reports changes (the clock alone is no news); silent
    when quiet."""

    def __init__(self, *, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = (not quiet and _isatty(self.stream) and "NO_COLOR" not in os.environ
                     and os.environ.get("TERM") != "dumb")
        self.last: str | None = None

    def update(self, text: str) -> None:
        if self.quiet or text == self.last or (not self.live and self.last is not None
                                               and _news(text) == _news(self.last)):
            return
        if self.live:
            self.stream.write(f"\r\x1b[K{text}")
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()
        self.last = text

    def done(self) -> None:
        """The wait is over: end the live line; the next update starts a new one."""
        if self.live and self.last is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.last = None


def _news(text: str) -> str:
    """What a progress line reports, without its trailing clock."""
    return CLOCK.sub("", text)


def _isatty(stream: Any) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def rollout(obj: Object | None) -> tuple[bool, str]:
    """(done, "ready/desired") for a Deployment or DaemonSet as the API server reports it."""
    if obj is None:
        return False, "missing"
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    observed = status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 1)
    if obj["kind"] == "Deployment":
        want = spec.get("replicas", 1)
        ready = status.get("availableReplicas", 0)
        done = observed and status.get("updatedReplicas", 0) == want == ready and status.get("replicas", 0) == want
        return done, f"{ready}/{want}"
    want = status.get("desiredNumberScheduled", 0)
    ready = status.get("numberReady", 0)
    done = observed and status.get("updatedNumberScheduled", 0) == want == ready
    return done, f"{ready}/{want} nodes"


def wait(*, cluster: ClusterClient, namespace: str, workloads: list[Workload], timeout: float, progress: Progress,
         interval: float = 2.0, clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] | None = None) -> None:
    """Watch `workloads` [(apiVersion, kind, name)] until every rollout is done, or raise ClusterError with a
    diagnosis. The progress line is refreshed on every change and at least every `interval` seconds; `sleep`
    (tests) replaces waiting for a change."""
    start = clock()
    sources = {w: Source(w[0], w[1], namespace, name=w[2]) for w in workloads}
    with watch(cluster, list(sources.values()), sleep=sleep) as watcher:
        while True:
            states = {w: rollout(watcher.get(source)) for w, source in sources.items()}
            elapsed = clock() - start
            progress.update("waiting: " + ", ".join(f"{w[2]} {text}" for w, (_, text) in states.items())
                            + f" ({elapsed:.0f}s)")
            pending = [w for w, (done, _) in states.items() if not done]
            if not pending:
                progress.done()
                return
            if elapsed >= timeout:
                progress.done()
                raise _timed_out(cluster, namespace, pending, states, timeout)
            pause(watcher, sleep)(min(interval, max(timeout - elapsed, 0.1)))


def _timed_out(cluster: ClusterClient, namespace: str, pending: list[Workload],
               states: dict[Workload, tuple[bool, str]], timeout: float) -> ClusterError:
    names = ", ".join(f"{w[1]} {namespace}/{w[2]} ({states[w][1]})" for w in pending)
    causes = diagnose(cluster=cluster, namespace=namespace, workloads=pending)
    return ClusterError(f"timed out after {timeout:.0f}s waiting for {names}: "
                        + ("; ".join(causes) or "no cause found in pod status or events; "
                           f"try kubectl -n {namespace} describe pods"))


def diagnose(*, cluster: ClusterClient, namespace: str, workloads: Iterable[Workload]) -> list[str]:
    """Likely causes of a stuck rollout, from pod status, the PVCs and Warning events."""
    events = [e for e in cluster.list("v1", "Event", namespace=namespace) if e.get("type") == "Warning"]
    causes = _pvc_causes(cluster, namespace, events)
    for workload in workloads:
        causes += [c for c in _workload_causes(cluster, namespace, workload, events) if c not in causes]
    return causes


def _workload_causes(cluster: ClusterClient, namespace: str, workload: Workload, events: list[Object]) -> list[str]:
    """What its pods say; when it has none, why its controller could not create them (PodSecurity, quota, ...)."""
    api_version, kind, name = workload
    live = cluster.get(api_version, kind, name, namespace=namespace)
    pods = cluster.list("v1", "Pod", namespace=namespace, label_selector=selectors.of(live))
    if pods:
        return [c for pod in pods for c in pod_causes(pod) + crash_causes(cluster, pod)]
    return [f"{kind} {name}: {e.get('message', '').strip()}" for e in events
            if e.get("involvedObject", {}).get("name", "").startswith(name) and e.get("reason") == "FailedCreate"][-1:]


def crash_causes(cluster: ClusterClient, pod: Object) -> list[str]:
    """What the last log lines of a pod's failed containers say, where meshreg recognizes it."""
    meta = pod["metadata"]
    out = []
    for container, previous in crashes.crashing(pod):
        try:
            log = cluster.log(meta["name"], namespace=meta.get("namespace"), container=container, previous=previous,
                              tail=40)
        except ClusterError:  # no right to read logs: the status line above already says it crashes
            continue
        why = crashes.explain(log or "")
        if why:
            out.append(f"pod {meta['name']}: container {container}: {why}")
    return out


def _pvc_causes(cluster: ClusterClient, namespace: str, events: list[Object]) -> list[str]:
    out = []
    for pvc in cluster.list("v1", "PersistentVolumeClaim", namespace=namespace):
        if (pvc.get("status") or {}).get("phase") == "Pending":
            name = pvc["metadata"]["name"]
            why = [e.get("message", "") for e in events if e.get("involvedObject", {}).get("name") == name]
            out.append(f"PersistentVolumeClaim {name} is Pending" + (f": {why[-1].strip()}" if why else
                                                                     " (no storage class or volume can bind it)"))
    return out


def pod_causes(pod: Object) -> list[str]:
    """Why a pod is not ready, in words a user can act on: no sidecar, not schedulable, an image it cannot pull, a
    container that keeps crashing."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    out = _sidecar_causes(pod) + _scheduling_causes(name, status.get("conditions") or [])
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        cause = _container_cause(pod, cs)
        if cause:
            out.append(cause)
    return out


def _sidecar_causes(pod: Object) -> list[str]:
    wants_sidecar = ((pod["metadata"].get("labels") or {}).get("sidecar.istio.io/inject") != "false")  # ambient
    if has_sidecar(pod) or not wants_sidecar:
        return []
    return [f"pod {pod['metadata']['name']}: no istio-proxy sidecar was injected (check the namespace's injection "
            "label and that istiod is running)"]


def _scheduling_causes(name: str, conditions: list[dict[str, Any]]) -> list[str]:
    out = []
    for cond in conditions:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            message = (cond.get("message") or cond.get("reason") or "").strip()
            hint = " (the hostPort is already taken on those nodes)" if "free ports" in message else ""
            out.append(f"pod {name} cannot be scheduled: {message}{hint}")
    return out


def _container_cause(pod: Object, cs: dict[str, Any]) -> str | None:
    """What keeps one container from running: an image it cannot pull, or a crash loop."""
    name = pod["metadata"]["name"]
    waiting = (cs.get("state") or {}).get("waiting") or {}
    if waiting.get("reason") in PULL_FAILURES and cs.get("image") == "auto":
        return (f"pod {name}: Istio did not inject the gateway (image: auto was never replaced; check the "
                "namespace's injection label and that istiod is running)")
    if waiting.get("reason") in PULL_FAILURES:
        return f"pod {name}: cannot pull image {cs.get('image')}: {waiting.get('message', waiting['reason'])}"
    if waiting.get("reason") == "CrashLoopBackOff":
        last = (cs.get("lastState") or {}).get("terminated") or {}
        return (f"pod {name}: container {cs.get('name')} keeps crashing (last exit code "
                f"{last.get('exitCode', '?')}, {last.get('reason', 'unknown')}); "
                f"see kubectl logs -n {pod['metadata'].get('namespace')} {name} -c {cs.get('name')} --previous")
    return None
