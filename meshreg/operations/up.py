"""`meshreg up`: preflight checks and the read of what exists, a server-side dry run of everything, apply and prune,
then wait for the rollout and make sure Istio enforces on every pod. No success without enforcement."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import cast

from meshreg import render as rendering
from meshreg.cluster import apply as applying
from meshreg.cluster import deleting, enforcement, parallel, runtimeconfig, settled
from meshreg.cluster import live as lives
from meshreg.cluster import pushproxy as pushproxies
from meshreg.cluster import scope as scopes
from meshreg.cluster import wait as waiting
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.outcomes import Outcome
from meshreg.config import Config, Registry
from meshreg.config.mesh import WAYPOINT
from meshreg.doctor import preflight
from meshreg.errors import ClusterError
from meshreg.operations.interruption import CHECKS, ENFORCEMENT, WAIT, Phase
from meshreg.render import hosting

__all__ = ["Addresses", "IngressAddress", "PushProxyAddress", "UpEvents", "UpReport", "addresses",
           "push_proxy_namespaces", "up"]


@dataclass(frozen=True)
class PushProxyAddress:
    """`meshreg connect` forwards localhost:`port` to the push proxy in `namespace` (its Role is there)."""

    port: int
    namespace: str


@dataclass(frozen=True)
class IngressAddress:
    """Where the ingress clients push from outside the cluster."""

    address: str
    clients: tuple[str, ...]


@dataclass(frozen=True)
class Addresses:
    """Where to push to and pull from one registry, and who may push."""

    registry: str
    role: str
    default: bool
    push: str  # the in-cluster address writers push to
    pull: str | None  # what pod specs name (None: the node proxy is disabled)
    writers: tuple[str, ...]
    push_proxy: PushProxyAddress | None
    ingress: IngressAddress | None


@dataclass(frozen=True)
class UpReport:
    """What `up` applied (or, on a dry run, would apply) and where to push and pull."""

    server: str
    dry_run: bool
    outcomes: tuple[Outcome, ...]  # one per object, in the order they were applied
    notes: tuple[str, ...]  # what the user should know about what was applied (a storage change, unchecked objects)
    addresses: tuple[Addresses, ...]  # the default registry first
    notices: tuple[str, ...]  # hints the config implies (render.notices, without the writers: addresses name them)

    @property
    def counts(self) -> dict[str, int]:
        """How many objects each action had, in the order the actions first came."""
        return dict(Counter(o.action for o in self.outcomes))


class UpEvents:
    """What `up` says while it runs, in this order; here each says nothing (the CLI prints them), and the wait's
    progress line is on stderr unless `quiet`."""

    def __init__(self, *, quiet: bool = True) -> None:
        self.quiet = quiet

    def warning(self, text: str) -> None:
        """A preflight check's warning, or the API server's (Pod Security, deprecations)."""

    def dry_run(self, server: str) -> None:
        """A dry run is about to start: nothing changes on `server`."""

    def outcome(self, outcome: Outcome) -> None:
        """One object applied, pruned or (on a dry run) planned, as it happens."""

    def applied(self, report: UpReport) -> None:
        """Every object is applied and pruned (or planned); the wait comes next."""

    def note(self, text: str) -> None:
        """Something the user should know that is not a warning."""

    def progress(self) -> waiting.Progress:
        """Where a wait reports its progress (one per wait)."""
        return waiting.Progress(quiet=self.quiet)


def up(cfg: Config, cluster: ClusterClient, *, manifests: list[Object] | None = None, dry_run: bool = False,
       wait: bool = True, timeout: float = 300, adopt: bool = False, force_conflicts: bool = False,
       skip_checks: bool = False, events: UpEvents | None = None) -> UpReport:
    """Deploy (or update) what `cfg` renders (`manifests`, when the caller has rendered it already); raises
    ClusterError, saying why and what is applied, when the cluster refuses, the rollout does not finish in
    `timeout` seconds, or Istio does not enforce on every pod."""
    events = events or UpEvents()
    objects = rendering.render(cfg) if manifests is None else manifests
    phase = Phase("up", CHECKS)
    try:
        scope, live, answers = _checks_and_live(cluster, cfg, objects, skip_checks=skip_checks, force=force_conflicts,
                                                events=events)
        live = _after_deletions(cluster, objects, live=live, scope=scope, dry_run=dry_run, timeout=timeout,
                                events=events)
        pushproxies.check_alone(cluster=cluster, instance=cfg.name, namespaces=push_proxy_namespaces(cfg))
        if dry_run:
            events.dry_run(cluster.server)
        outcomes = _apply(cluster, cfg, objects, live=live, scope=scope, answers=answers, dry_run=dry_run,
                          adopt=adopt, force_conflicts=force_conflicts, events=events, phase=phase)
        report = UpReport(server=cluster.server, dry_run=dry_run, outcomes=tuple(outcomes),
                          notes=_notes(outcomes, cfg), addresses=addresses(cfg),
                          notices=tuple(rendering.notices(cfg, writers=False)))
        events.applied(report)
        if not dry_run:
            _verify(cfg, objects, cluster, wait=wait, applied=len(outcomes), timeout=timeout, events=events,
                    phase=phase)
    except KeyboardInterrupt:
        raise phase.interrupted() from None
    return report


def _checks_and_live(cluster: ClusterClient, cfg: Config, objects: list[Object], *, skip_checks: bool, force: bool,
                     events: UpEvents) -> tuple[lives.Scope, lives.Live, dict[lives.Key, settled.Answer]]:
    """The checks before any write, and the dry run with the read of what exists (and of where to prune), sent
    together: neither depends on the other, and what both read (the server's version, discovery, the namespace, its
    collections) is sent once (a shared Snapshot). When the dry run shows everything as the last `up` left it, what
    exists is its answers and nothing is to be pruned (cluster/settled.py). Returns the prune scope, what exists and
    the dry run's answers the apply may take."""
    shared = lives.Snapshot(cluster)

    def checks() -> list[str]:
        return [] if skip_checks else preflight.preflight(cluster=shared, cfg=cfg, manifests=objects)

    def read() -> tuple[lives.Scope, lives.Live, dict[lives.Key, settled.Answer]]:
        shared.version()  # an answer before the dry run: the server's clock
        found, answers = settled.probe(cluster, objects, force=force)
        if found is not None:
            return {}, found, answers
        return (*scopes.live_and_scope(shared, cfg, objects), settled.reusable(answers))

    (_, warnings, failed), (_, found, unread) = parallel.each(lambda task: task(), [checks, read])
    if failed:
        raise failed
    for warning in cast(list[str], warnings):
        events.warning(warning)
    if unread:
        raise unread
    return cast(tuple[lives.Scope, lives.Live, dict[lives.Key, settled.Answer]], found)


def _after_deletions(cluster: ClusterClient, objects: list[Object], *, live: lives.Live, scope: lives.Scope,
                     dry_run: bool, timeout: float, events: UpEvents) -> lives.Live:
    """What exists once the objects being deleted (a `meshreg down` just before, whose workloads go in the
    foreground) are gone: applying to them would change nothing, and then they would vanish. A dry run only says
    so."""
    pending = deleting.being_deleted(objects, live)
    if not pending:
        return live
    if dry_run:
        events.warning(f"{len(pending)} object(s) are being deleted; up waits until they are gone before applying")
        return live
    deleting.await_gone(cluster, pending, timeout=timeout, progress=events.progress())
    return lives.read(manifests=objects, cluster=cluster, scope=scope)


def _apply(cluster: ClusterClient, cfg: Config, objects: list[Object], *, live: lives.Live, scope: lives.Scope,
           answers: dict[lives.Key, settled.Answer], dry_run: bool, adopt: bool, force_conflicts: bool,
           events: UpEvents, phase: Phase) -> list[Outcome]:
    """The dry run, then (unless `dry_run`) apply and prune; then the server's own warnings, whatever happened."""
    try:
        return applying.apply(manifests=objects, cluster=cluster, live=live, prune=scope, answers=answers,
                              dry_run=dry_run, force_conflicts=force_conflicts, adopt=adopt,
                              on_outcome=events.outcome, on_phase=phase)
    except applying.NotOwned as e:
        raise ClusterError(_ownership_advice(e, cfg)) from e
    finally:
        for warning in dict.fromkeys(cluster.warnings):  # the server's own warnings (Pod Security, deprecations)
            events.warning(warning)


def _ownership_advice(e: applying.NotOwned, cfg: Config) -> str:
    """The refusal, and what to do when the owner is another meshreg instance."""
    published = f"ConfigMap {scopes.HOSTING_NAMESPACE}/local-registry-hosting"
    theirs = [o for objs in e.others.values() for o in objs]
    advice = []
    if published in theirs:
        advice.append("only one instance can publish kube-public/local-registry-hosting: set "
                      "spec.localRegistryHosting.publish: false in this config (its addresses are then published "
                      f"in {scopes.HOSTING_NAMESPACE}/{hosting.index_name(cfg)})")
    index = f"ConfigMap {scopes.HOSTING_NAMESPACE}/{hosting.index_name(cfg)}"
    if index in theirs:
        advice.append(f"another instance named {cfg.name} publishes {index[len('ConfigMap '):]}: give this one its "
                      "own metadata.name (an instance is its name and its namespace; the name also names what it "
                      "publishes)")
    if [o for o in theirs if o not in (published, index)]:
        advice.append("two instances cannot share objects: give this one its own spec.namespace and node-proxy port")
    if theirs:
        advice.append("--adopt never takes objects from another instance; see docs/operations.md")
    return "; ".join([str(e), *advice])


def _notes(outcomes: list[Outcome], cfg: Config) -> tuple[str, ...]:
    """Each outcome's note, and the objects the server could not check in a dry run."""
    notes = [o.note for o in outcomes if o.note]
    unchecked = [o for o in outcomes if not o.checked]
    if unchecked:
        notes.append(f"{len(unchecked)} objects were not checked by the server: namespace {cfg.namespace} does not "
                     "exist yet, so admission, quota and webhooks cannot run on them in a dry run (meshreg up creates "
                     "the namespace first and checks them before it changes anything else)")
    return tuple(notes)


def _workloads(cfg: Config) -> list[waiting.Workload]:
    """The workloads in meshreg's namespace whose rollout `up` waits for."""
    out = [("apps/v1", "Deployment", reg.name) for reg in cfg.registries]
    if cfg.node_proxy.enabled:
        out.append(("apps/v1", "DaemonSet", "node-proxy"))
    if cfg.mesh == "ambient":  # istiod deploys the waypoint from its Gateway, under the Gateway's name
        out.append(("apps/v1", "Deployment", WAYPOINT))
    if cfg.node_proxy.runtime_config.enabled:
        out.append(runtimeconfig.WORKLOAD)
    return out


def _verify(cfg: Config, objects: list[Object], cluster: ClusterClient, *, wait: bool, applied: int, timeout: float,
            events: UpEvents, phase: Phase) -> None:
    """Wait for the rollout, then make sure Istio enforces on every pod: no success without enforcement."""
    if not wait:
        events.note("not waiting for the rollout, so sidecar injection is not verified; meshreg status checks it")
        return
    try:
        phase(WAIT)
        waiting.wait(cluster=cluster, namespace=cfg.namespace, workloads=_workloads(cfg), timeout=timeout,
                     progress=events.progress())
        for namespace in push_proxy_namespaces(cfg):
            waiting.wait(cluster=cluster, namespace=namespace, workloads=[("apps/v1", "Deployment", "push-proxy")],
                         timeout=timeout, progress=events.progress())
        phase(ENFORCEMENT)
        enforcement.check(cluster=cluster, manifests=objects)
    except ClusterError as e:
        raise ClusterError(f"{e}{_waypoint_note(cluster, cfg, objects)} (all {applied} objects were applied)") from e


def _waypoint_note(cluster: ClusterClient, cfg: Config, objects: list[Object]) -> str:
    """Why the waypoint is missing, from its Gateway's status, when istiod has not programmed it."""
    from meshreg.status import gather  # status's readers: only when a wait has failed

    waypoint = gather.waypoint(cluster, namespace=cfg.namespace, manifests=objects)
    if waypoint is None or waypoint.programmed:
        return ""
    return f"; Gateway {waypoint.name} is not programmed by istiod: {waypoint.message}"


def push_proxy_namespaces(cfg: Config) -> list[str]:
    """The namespaces of the registries' push proxies."""
    return [reg.push_proxy.namespace for reg in cfg.registries if reg.push_proxy]


def addresses(cfg: Config) -> tuple[Addresses, ...]:
    """Each registry's addresses, the default registry first, then by name."""
    return tuple(_addresses(cfg, reg) for reg in sorted(cfg.registries, key=lambda r: (not r.default, r.name)))


def _addresses(cfg: Config, reg: Registry) -> Addresses:
    proxy, ingress = reg.push_proxy, cfg.ingress
    return Addresses(
        registry=reg.name, role=reg.role, default=reg.default, push=cfg.service_host(reg),
        pull=f"localhost:{reg.port}" if cfg.node_proxy.enabled else None,
        writers=tuple(w.service_account for w in cfg.writers_of(reg)),
        push_proxy=PushProxyAddress(port=proxy.port, namespace=proxy.namespace) if proxy else None,
        ingress=IngressAddress(address=ingress.address, clients=tuple(c.name for c in ingress.clients))
        if ingress and ingress.registry == reg.name else None)
