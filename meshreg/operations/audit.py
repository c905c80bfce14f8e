"""`meshreg audit`: one registry's trail of writes and refusals from what the cluster holds: the audit records in the
logs of the proxies that enforced its policies (its sidecars, or its waypoint; a dedicated ingress gateway), read
through the API server as `kubectl logs` reads them, with where each came from and how far back it reaches.

No server component: the kubelet keeps a container's current log file (and that of its previous run) until it rotates
it away or the pod goes; anything older lives only in the log pipeline the records are shipped to (docs/audit.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

from meshreg import audit as auditing
from meshreg.audit import meshconfig
from meshreg.cluster import parallel
from meshreg.cluster.api import ClusterClient, Object
from meshreg.config import Config, Registry
from meshreg.doctor.facts import Facts
from meshreg.errors import ClusterError
from meshreg.render import audit as rendering
from meshreg.render import labels, render

CONTAINER = "istio-proxy"  # the proxy container of sidecars, gateways and waypoints alike
SIDECAR, WAYPOINT = "registry sidecar", "waypoint"
WAYPOINT_POD = "gateway.networking.k8s.io/gateway-name"  # the label istiod gives a waypoint's pods
STARTUP_SLACK = timedelta(seconds=60)  # the proxy logs as it starts: a first line later than that was rotated away
SHOWN_MALFORMED = 3
_KUBELET_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ")


@dataclass(frozen=True)
class Source:
    """Where one proxy's pods are: which proxy (`registry sidecar`, `waypoint`, `ingress gateway`), namespace, pods."""

    proxy: str
    namespace: str
    selector: str


@dataclass(frozen=True)
class PodLog:
    """What was read of one proxy container, and how far back it reaches."""

    proxy: str
    namespace: str
    pod: str
    started: datetime | None = None  # the running container's start
    restarts: int = 0
    previous: bool = False  # the previous run's log was read too
    first_line: datetime | None = None  # the oldest line the kubelet still keeps of the running container
    records: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    rotated: bool = False  # the kubelet no longer has the container's first lines
    problem: str | None = None  # why it could not be read

    @property
    def lost_runs(self) -> int:
        """Runs of the container whose logs are gone (the kubelet keeps the running one and the one before)."""
        return max(self.restarts - (1 if self.previous else 0), 0)


@dataclass(frozen=True)
class AuditReport:
    server: str
    config: str
    registry: str
    namespace: str
    query: auditing.Query
    events: tuple[auditing.Event, ...]
    logs: tuple[PodLog, ...]
    notes: tuple[str, ...] = ()  # why records may be missing: provider, Telemetry, pods
    malformed: tuple[str, ...] = ()  # audit lines that break the contract (the first few), with their pod
    malformed_count: int = 0
    recording: bool | None = None  # the mesh config and the Telemetry make the proxies write records (None: unknown)

    @property
    def oldest(self) -> datetime | None:
        """The oldest record read from any source."""
        found = [p.oldest for p in self.logs if p.oldest]
        return min(found) if found else None

    @property
    def ok(self) -> bool:
        """Every source was read and the proxies are writing records."""
        return bool(self.logs) and not any(p.problem for p in self.logs) and self.recording is not False

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


@dataclass
class _Read:
    log: PodLog
    records: list[auditing.Record] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)


def sources(cfg: Config, reg: Registry) -> list[Source]:
    """The proxies whose logs hold this registry's records."""
    if cfg.mesh == "ambient":
        out = [Source(WAYPOINT, cfg.namespace, f"{WAYPOINT_POD}=waypoint")]
    else:
        out = [Source(SIDECAR, cfg.namespace, labels.selector(labels.registry_pods(cfg, reg)))]
    ing = cfg.ingress
    if ing and ing.registry == reg.name and rendering.records_ingress(cfg):
        out.append(Source(auditing.GATEWAY, ing.gateway.namespace, labels.selector(ing.gateway.selector)))
    return out


def _proxy_status(pod: Object) -> Object:
    status = pod.get("status") or {}
    found = [c for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
             if c.get("name") == CONTAINER]  # a native sidecar is an init container
    return found[0] if found else {}


def _started(status: Object) -> datetime | None:
    state = status.get("state") or {}
    when = (state.get("running") or state.get("terminated") or {}).get("startedAt")
    return auditing.parse_time(when) if when else None


def _parse(read: _Read, text: str, *, pod: str) -> datetime | None:
    """Records of a log read with timestamps into `read`; the kubelet's time of its first line."""
    first = None
    for line in text.splitlines():
        stamped = _KUBELET_TIME.match(line)
        if stamped and first is None:
            first = auditing.parse_time(stamped.group(1))
        try:
            record = auditing.parse_line(line[stamped.end():] if stamped else line)
        except auditing.RecordError as e:
            read.malformed.append(f"{pod}: {e}")
            continue
        if record:
            read.records.append(record)
    return first


def _texts(cluster: ClusterClient, source: Source, name: str, status: Object,
           since_seconds: int | None) -> tuple[str | None, str | None]:
    """(previous run's log or None when not read, current log or None when the pod is gone), with timestamps."""
    previous = None
    if status.get("restartCount") and (status.get("lastState") or {}).get("terminated"):
        previous = cluster.log(name, namespace=source.namespace, container=CONTAINER, previous=True,
                               since_seconds=since_seconds, timestamps=True) or ""
    current = cluster.log(name, namespace=source.namespace, container=CONTAINER, since_seconds=since_seconds,
                          timestamps=True)
    return previous, current


def _rotated(first: datetime | None, started: datetime | None, cutoff: datetime | None) -> bool:
    """The proxy logs as it starts: a first line much later than the start means the kubelet rotated lines away.
    Only a window that begins before the start can tell."""
    if first is None or started is None or (cutoff is not None and cutoff >= started):
        return False
    return first - started > STARTUP_SLACK


def _read_pod(cluster: ClusterClient, source: Source, pod: Object, cutoff: datetime | None,
              since_seconds: int | None) -> _Read:
    name, status = pod["metadata"]["name"], _proxy_status(pod)
    restarts, started = int(status.get("restartCount") or 0), _started(status)
    read = _Read(PodLog(source.proxy, source.namespace, name, started, restarts))
    try:
        previous, current = _texts(cluster, source, name, status, since_seconds)
    except ClusterError as e:
        read.log = replace(read.log, problem=str(e))
        return read
    _parse(read, previous or "", pod=name)
    first = _parse(read, current or "", pod=name)
    times = [r.time for r in read.records]
    read.log = replace(read.log, previous=previous is not None, first_line=first, records=len(times),
                       oldest=min(times, default=None), newest=max(times, default=None),
                       rotated=_rotated(first, started, cutoff),
                       problem=None if current is not None else "the pod is gone")
    return read


def _provider_notes(cluster: ClusterClient, cfg: Config, manifests: list[Object]) -> tuple[bool | None, list[str]]:
    """Whether the mesh config defines the audit provider as meshreg writes it (None: could not read it)."""
    try:
        where, mesh = Facts(cluster, cfg, manifests).mesh_config()
    except ClusterError as e:
        return None, [f"could not read the mesh config ({e}): whether the proxies write records is unknown"]
    found = meshconfig.problems(mesh, cfg.audit.provider)
    return (False, [f"{where}: {'; '.join(found)}: {meshconfig.FIX}"]) if found else (True, [])


def _telemetry_notes(cluster: ClusterClient, cfg: Config) -> tuple[bool, list[str]]:
    """Whether every audit Telemetry meshreg renders is deployed."""
    deployed, notes = True, []
    for obj in rendering.objects(cfg):
        meta = obj["metadata"]
        try:
            live = cluster.get(obj["apiVersion"], "Telemetry", meta["name"], namespace=meta["namespace"])
        except ClusterError as e:
            notes.append(f"could not read Telemetry {meta['namespace']}/{meta['name']}: {e}")
            continue
        if live is None:
            deployed = False
            notes.append(f"Telemetry {meta['namespace']}/{meta['name']} is not deployed: run meshreg up")
    return deployed, notes


def _recording(cluster: ClusterClient, cfg: Config, manifests: list[Object]) -> tuple[bool | None, list[str]]:
    """Whether the proxies write records: the mesh config's provider, and the rendered Telemetry objects live."""
    if not cfg.audit.enabled:
        return False, [f"spec.audit.enabled is false in {cfg.source}: no Telemetry asks the proxies for audit "
                       "records (older records may still be in the logs)"]
    provider, notes = _provider_notes(cluster, cfg, manifests)
    deployed, more = _telemetry_notes(cluster, cfg)
    return (False if provider is False or not deployed else provider), notes + more


def _unrecorded(cfg: Config, reg: Registry) -> list[str]:
    """Who writes this registry without a record naming them: an ingress's clients on a shared gateway."""
    ing = cfg.ingress
    if ing and ing.registry == reg.name and cfg.audit.enabled and not rendering.records_ingress(cfg):
        return [f"the ingress gateway ({ing.gateway.namespace}) is shared, so it keeps no audit records: writes "
                "through the ingress show the gateway's identity, not the client (docs/audit.md)"]
    return []


def _pods(cluster: ClusterClient, source: Source) -> list[tuple[Source, Object]]:
    return [(source, p) for p in cluster.list("v1", "Pod", namespace=source.namespace,
                                              label_selector=source.selector)]


def _call(task: Callable[[], Any]) -> Any:
    return task()


def _gather(cluster: ClusterClient, cfg: Config, where: list[Source],
            manifests: list[Object]) -> tuple[bool | None, list[str], list[tuple[Source, Object]]]:
    """Whether records are written, notes, and the proxies' pods: read at once; ClusterError if pods cannot be
    listed."""
    tasks: list[Callable[[], Any]] = [partial(_recording, cluster, cfg, manifests),
                                      *[partial(_pods, cluster, s) for s in where]]
    (_, state, failed), *listed = parallel.each(_call, tasks)
    recording, notes = state if state else (None, [f"could not check that the proxies write records: {failed}"])
    pods: list[tuple[Source, Object]] = []
    for (_, found, error), source in zip(listed, where, strict=True):
        if error is not None:
            raise error
        pods += found or []
        if not found:
            notes.append(f"no {source.proxy} pod in namespace {source.namespace} ({source.selector}): is it "
                         "deployed? (meshreg status)")
    return recording, notes, pods


def audit(cfg: Config, cluster: ClusterClient, *, registry: str | None = None, since: timedelta | None = None,
          repository: str | None = None, who: str | None = None, now: datetime | None = None,
          manifests: list[Object] | None = None) -> AuditReport:
    """The trail of `registry` (None: the default one), oldest first; ClusterError when no pod can be listed.
    `manifests`: the render of `cfg` when the caller has it already (rendered here otherwise)."""
    reg = cfg.get_registry(registry)
    cutoff = (now or datetime.now(timezone.utc)) - since if since else None
    since_seconds = math.ceil(since.total_seconds()) if since else None
    recording, notes, pods = _gather(cluster, cfg, sources(cfg, reg), render(cfg) if manifests is None else manifests)
    notes += _unrecorded(cfg, reg)
    reads = parallel.values(lambda sp: _read_pod(cluster, sp[0], sp[1], cutoff, since_seconds), pods)
    query = auditing.Query(since=cutoff, repository=repository, who=who)
    events = auditing.trail([(r.log.proxy, r.records) for r in reads], cfg=cfg, registry=reg, query=query)
    malformed = [m for r in reads for m in r.malformed]
    return AuditReport(server=cluster.server, config=cfg.source, registry=reg.name, namespace=cfg.namespace,
                       query=query, events=tuple(events), logs=tuple(r.log for r in reads), notes=tuple(notes),
                       malformed=tuple(malformed[:SHOWN_MALFORMED]), malformed_count=len(malformed),
                       recording=recording)
