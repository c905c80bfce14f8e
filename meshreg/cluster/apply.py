"""Apply, prune and remove meshreg's objects: a server-side dry run of the whole render first, then the changes.

`up` reads what exists (one LIST per kind), refuses objects another owner holds, sends every object (and every prune
deletion) as a server-side dry run, and changes nothing unless the API server accepts them all: admission, quota,
schemas and CEL rules run on a dry run as on a real request. Only then does it apply what the dry run says would
change, in three waves sent concurrently (Namespaces; what workloads use and the policies that guard them; workloads
and the published addresses), and prune. An object the dry run shows unchanged is not sent again, as Flux does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from meshreg.cluster import live as lives
from meshreg.cluster import parallel, settled, storage
from meshreg.cluster.api import ClusterClient, Discovery, Object
from meshreg.cluster.client import FIELD_MANAGER, KINDS
from meshreg.cluster.live import Key, Live, Scope, key_of
from meshreg.cluster.outcomes import NotOwned, Outcome, Plan, Refusal, Refused, named, outcome
from meshreg.cluster.ownership import Identity, Ownership, describe, owner_of
from meshreg.cluster.settled import Answer
from meshreg.cluster.storage import Change
from meshreg.errors import ClusterError
from meshreg.render.labels import (
    APPLYSET_KINDS,
    APPLYSET_MEMBERS,
    APPLYSET_NAMESPACES,
    INSTANCE,
    MANAGED_BY,
    is_parent,
)

__all__ = ["OPTIONAL", "ORDER", "PRUNABLE", "PUBLISHED", "NotOwned", "Outcome", "Plan", "Refusal", "Refused", "apply",
           "key_of", "ordered", "plan", "served"]

# Dependency order: what others refer to first. Deleting goes the other way.
ORDER = ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret", "PersistentVolumeClaim",
         "Service", "Deployment", "DaemonSet", "PeerAuthentication", "RequestAuthentication", "AuthorizationPolicy",
         "Gateway", "VirtualService", "ServiceEntry", "DestinationRule", "Telemetry", "PodDisruptionBudget", "CronJob"]
# Every kind meshreg may have rendered in its namespace, so a kind the config no longer renders is still pruned.
# The PVC and the Namespace are absent on purpose: pruning must never delete registry data.
PRUNABLE = [("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "Deployment"),
            ("apps/v1", "DaemonSet"), ("security.istio.io/v1", "PeerAuthentication"),
            ("security.istio.io/v1", "AuthorizationPolicy"), ("networking.istio.io/v1", "Gateway"),
            ("networking.istio.io/v1", "VirtualService"), ("networking.istio.io/v1", "ServiceEntry"),
            ("networking.istio.io/v1", "DestinationRule"), ("telemetry.istio.io/v1", "Telemetry"),
            ("gateway.networking.k8s.io/v1", "Gateway"),
            ("policy/v1", "PodDisruptionBudget"), ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("batch/v1", "CronJob")]
# CRDs a cluster may lack (the Gateway API, for ambient mode's waypoint): pruned only where the server serves them.
OPTIONAL = ("gateway.networking.k8s.io/v1",)
# The kinds meshreg places outside its namespace (kube-public: the published addresses), pruned there.
PUBLISHED = [("v1", "ConfigMap")]
# Applied in the last wave, once what they use exists and the policies that guard them are in place.
WORKLOADS = ("Deployment", "DaemonSet")
KEEP = ("PersistentVolumeClaim", "Namespace")  # what `down` keeps unless --purge
FOREGROUND = ("Deployment", "DaemonSet")  # the workload stays visible until its pods are gone
PENDING = "pending"  # the parent's member digest while an apply that changes the members is under way
VOLATILE = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid")

OnOutcome = Callable[[Outcome], None]
OnPhase = Callable[[str], None]
DRY_RUN, APPLY, PRUNE = "dry run", "apply", "prune"  # the phases of an apply, in order


def served(cluster: Discovery, kinds: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """`kinds` [(apiVersion, kind)] without the optional ones the server does not serve (nothing of them to prune)."""
    return [(av, kind) for av, kind in kinds
            if av not in OPTIONAL or KINDS[(av, kind)][0] in cluster.served(av)]


def namespaces_of(manifests: Iterable[Object]) -> set[str]:
    """The Namespaces the render has."""
    return {o["metadata"]["name"] for o in manifests if o["kind"] == "Namespace"}


def _outside(namespace: str | None, namespaces: set[str]) -> bool:
    """In a namespace the render does not have (the published kube-public ConfigMaps)."""
    return bool(namespaces) and namespace is not None and namespace not in namespaces


def ordered(manifests: Iterable[Object]) -> list[Object]:
    """Manifests in dependency order (stable); objects outside the rendered namespaces (the published
    kube-public ConfigMap) come last, so addresses are published once what they point to exists."""
    own = namespaces_of(manifests)
    return sorted(manifests, key=lambda o: (_outside(o["metadata"].get("namespace"), own),
                                            ORDER.index(o["kind"]) if o["kind"] in ORDER else len(ORDER)))


def render_instance(manifests: Iterable[Object]) -> str | None:
    """The instance the rendered objects belong to (each carries it in its labels)."""
    return next((o["metadata"].get("labels", {}).get(INSTANCE) for o in manifests), None)


def check_ownership(objs: list[Object], live: Live, *, adopt: bool, ownership: Ownership | None = None,
                    cluster: ClusterClient | None = None) -> None:
    """Refuse objects with meshreg's names held by another meshreg instance (always: --adopt never takes them) or
    by nobody meshreg knows (unless adopt). With `cluster`, another instance is named with its namespace."""
    ownership = ownership or Ownership(Identity.of(objs), live)
    others: dict[tuple[str, str | None], list[str]] = {}
    unmanaged: list[str] = []
    for obj in objs:
        current = live.of(obj)
        if current is None or ownership.mine(current):  # what does not exist yet is the instance's
            continue
        owner = owner_of(current)
        if owner.managed:
            others.setdefault((ownership.whose(current), owner.set_id), []).append(named(obj))
        elif not adopt:
            unmanaged.append(_unmanaged(obj, current))
    if others or unmanaged:
        raise NotOwned(others=_described(others, cluster), unmanaged=unmanaged)


def _described(others: dict[tuple[str, str | None], list[str]],
               cluster: ClusterClient | None) -> dict[str, list[str]]:
    """Other owners named with their namespace (looked up in `cluster`, when given)."""
    return {(describe(cluster, who, set_id) if cluster else who): found for (who, set_id), found in others.items()}


def _unmanaged(obj: Object, current: Object) -> str:
    """An object meshreg does not manage, named with the tool that says it does."""
    manager = (current["metadata"].get("labels") or {}).get(MANAGED_BY)
    return named(obj) + (f" (managed-by={manager})" if manager else "")


def plan(*, manifests: list[Object], cluster: ClusterClient, live: Live | None = None, force_conflicts: bool = False,
         deletions: Iterable[Object] = (), created: Iterable[str] = (), answers: dict[Key, Answer] | None = None
         ) -> Plan:
    """Dry-run every object (and every deletion in `deletions`) at once, but those `answers` has the server's answer
    for already. Namespaces named in `created` were just created for this check and are left out; objects in a
    rendered Namespace that does not exist are unchecked."""
    skip = set(created)
    objs = [o for o in ordered(manifests) if not (o["kind"] == "Namespace" and o["metadata"]["name"] in skip)]
    live = live or lives.read(manifests=objs, cluster=cluster)
    changes = {key_of(c.obj): c for c in storage.review(manifests=objs, live=live, cluster=cluster)}
    answers = _dry_run(objs, live, cluster=cluster, force=force_conflicts, known=answers or {})
    out = Plan()
    for obj in objs:
        _plan_one(out, obj, answers.get(key_of(obj)), change=changes.get(key_of(obj)), current=live.of(obj))
    for obj, _, error in parallel.each(lambda o: delete(cluster, o, dry_run=True), list(deletions)):
        if error is not None:
            out.refusals.append(Refusal(error))
        else:
            out.outcomes.append(outcome(obj, "would prune"))
    return out


def _dry_run(objs: list[Object], live: Live, *, cluster: ClusterClient, force: bool,
             known: dict[Key, Answer]) -> dict[Key, Answer]:
    """The server's answer to a dry run of each object it can check, from `known` where it answered already: not
    those of a rendered Namespace that does not exist yet (they would all be refused for that alone)."""
    absent = {o["metadata"]["name"] for o in objs if o["kind"] == "Namespace" and live.of(o) is None}
    checked = [o for o in objs if o["metadata"].get("namespace") not in absent]
    answers = {key_of(o): known[key_of(o)] for o in checked if key_of(o) in known}
    return {**answers, **settled.dry_run(cluster, [o for o in checked if key_of(o) not in answers], force=force)}


def _plan_one(out: Plan, obj: Object, answer: Answer | None, *, change: Change | None, current: Object | None) -> None:
    """Add what the dry run says of `obj` to the plan: its outcome, or its refusal (a storage change meshreg
    refuses is a refusal even where the server accepts it)."""
    if answer is None:
        out.outcomes.append(outcome(obj, "created", checked=False))
        return
    result, error = answer
    if change and change.refusal:
        error = ClusterError(change.refusal + (f" (the API server says: {error})" if error else ""))
    if error is not None:
        out.refusals.append(Refusal(error))
        return
    assert result is not None  # no error: the server answered with the object
    out.outcomes.append(outcome(obj, _action(result, current), note=change.note if change else None))
    out.versions[key_of(obj)] = result["metadata"].get("resourceVersion")


def _action(result: Object, current: Object | None) -> str:
    if current is None:
        return "created"
    return "unchanged" if _same(result, current) else "changed"


def _same(result: Object, current: Object | None) -> bool:
    """A dry run that changes nothing answers with the live object itself; compare what meshreg applies and its
    own field ownership (a controller's status write in between is not a change)."""
    return current is not None and comparable(result) == comparable(current) and _ours(result) == _ours(current)


def _ours(obj: Object) -> list[dict[str, Any]]:
    return [e for e in obj.get("metadata", {}).get("managedFields") or []
            if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"]


def comparable(obj: Object) -> Object:
    """The object without what the server changes on every write (and without status)."""
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k not in VOLATILE}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def apply(*, manifests: list[Object], cluster: ClusterClient, dry_run: bool = False, force_conflicts: bool = False,
          adopt: bool = False, prune: Scope | None = None, live: Live | None = None,
          answers: dict[Key, Answer] | None = None, on_outcome: OnOutcome | None = None,
          on_phase: OnPhase | None = None) -> list[Outcome]:
    """Check the whole render (and the prune of what it no longer has, for `prune` {namespace: [(apiVersion,
    kind)]}) with a server-side dry run (taking the server's `answers` where given), then apply and prune; raises
    Refused, changing nothing, when anything is refused, and NotOwned before any request that writes when another
    owner holds one of the objects. `on_phase` hears DRY_RUN, APPLY and PRUNE as each starts (what a Ctrl-C
    stopped)."""
    phase = on_phase or (lambda _: None)
    objs = ordered(manifests)
    live = live or lives.read(manifests=objs, cluster=cluster, scope=prune)
    ownership = Ownership(Identity.of(objs), live)
    check_ownership(objs, live, adopt=adopt, ownership=ownership, cluster=cluster)
    _check_not_deleted(objs, live)
    if not dry_run:
        _after_deletions(objs, live, cluster=cluster)
    strays = _strays(objs, live, prune, ownership)
    phase(DRY_RUN)
    created = [] if dry_run else _create_namespaces(objs, live, cluster=cluster, force=force_conflicts)
    checked = _checked(objs, cluster=cluster, live=live, force=force_conflicts, strays=strays, created=created,
                       answers=answers)
    if checked.refusals:
        raise Refused(checked.refusals, rolled_back=_roll_back(created, cluster))
    emit(created, on_outcome)
    if dry_run:
        emit(checked.outcomes, on_outcome)
        return checked.outcomes
    parent = Parent.of(checked, live)
    namespaces = namespaces_of(objs)
    phase(APPLY)
    done = _apply_waves(checked, created=created, namespaces=namespaces, cluster=cluster, force=force_conflicts,
                        on_outcome=on_outcome, parent=parent)
    phase(PRUNE)
    pruned = _prune(strays, cluster=cluster, on_outcome=on_outcome, applied=len(done))
    return done + pruned + parent.settle(cluster=cluster, force=force_conflicts, on_outcome=on_outcome)


def _checked(objs: list[Object], *, cluster: ClusterClient, live: Live, force: bool, strays: list[Object],
             created: list[Outcome], answers: dict[Key, Answer] | None) -> Plan:
    """The dry run of everything; interrupted (Ctrl-C), the Namespaces created for it are deleted again, as after a
    refusal: they hold nothing yet, and nothing would point to them."""
    try:
        return plan(manifests=objs, cluster=cluster, live=live, force_conflicts=force, deletions=strays,
                    created=[o.name for o in created], answers=answers)
    except KeyboardInterrupt:
        _roll_back(created, cluster)
        raise


def _check_not_deleted(objs: list[Object], live: Live) -> None:
    """A Namespace being deleted refuses new content: say so once, rather than once per object."""
    for obj in objs:
        current = live.of(obj) if obj["kind"] == "Namespace" else None
        if current and current["metadata"].get("deletionTimestamp"):
            name = obj["metadata"]["name"]
            raise ClusterError(f"Namespace {name} is being deleted; wait until it is gone (kubectl get namespace "
                               f"{name}), then run meshreg up again; nothing was changed")


def _after_deletions(objs: list[Object], live: Live, *, cluster: ClusterClient, timeout: float = 120.0,
                     interval: float = 1.0) -> None:
    """Rendered objects still on their way out (a prune or `down` moments ago: a workload stays until its pods are
    gone) are waited for and then counted absent, so they are created again; applied while terminating, they would
    be "unchanged" and then gone. Before any write: a timeout changes nothing."""
    deadline = time.monotonic() + timeout
    for obj in objs:
        current = live.of(obj)
        if obj["kind"] == "Namespace" or not current or not current["metadata"].get("deletionTimestamp"):
            continue
        meta = obj["metadata"]
        while cluster.get(obj["apiVersion"], obj["kind"], meta["name"], namespace=meta.get("namespace")):
            if time.monotonic() > deadline:
                raise ClusterError(f"{named(obj)} is still being deleted after {timeout:.0f}s (kubectl get shows "
                                   "its deletionTimestamp and finalizers); run meshreg up again once it is gone; "
                                   "nothing was changed")
            time.sleep(interval)
        live.objects.pop(key_of(obj), None)


def _strays(objs: list[Object], live: Live, scope: Scope | None, ownership: Ownership) -> list[Object]:
    """What prune deletes, workloads first, in a stable order."""
    if not scope:
        return []
    found = sorted(live.strays(manifests=objs, mine=ownership.mine, scope=scope), key=lambda o: str(key_of(o)))
    return list(reversed(ordered(found)))


class Parent:
    """The instance's ApplySet parent through an apply (KEP-3659): before any member is written it lists every
    group-kind and namespace that holds members, before or after this apply (the union of the live parent's and the
    render's), so that an apply stopped half-way leaves no member its parent does not point to, and, when the members
    change, its member digest says "pending" (an apply stopped half-way may have left members the render no longer
    has: cluster/settled.py); once prune is done, it is narrowed to the render's."""

    def __init__(self, planned: Outcome | None, current: Object | None) -> None:
        self.planned = planned
        self.widened = _widened(planned.obj, current) if planned else None
        self.sent: Object | None = None

    @classmethod
    def of(cls, checked: Plan, live: Live) -> Parent:
        planned = next((o for o in checked.outcomes if is_parent(o.obj)), None)
        return cls(planned, live.of(planned.obj) if planned else None)

    def widen(self, *, cluster: ClusterClient, force: bool) -> None:
        """Before the members: the parent with every kind and namespace that holds members now or will."""
        if self.widened is not None:
            cluster.apply(self.widened, force=force)
            self.sent = self.widened

    def settle(self, *, cluster: ClusterClient, force: bool, on_outcome: OnOutcome | None) -> list[Outcome]:
        """After the members and prune: the parent as rendered (unless that is what widen sent)."""
        if self.planned is None:
            return []
        if self.sent != self.planned.obj and not (self.sent is None and self.planned.action == "unchanged"):
            cluster.apply(self.planned.obj, force=force)
        emit([self.planned], on_outcome)
        return [self.planned]


def _widened(parent: Object, current: Object | None) -> Object | None:
    """`parent` with the union of its own and `current`'s member kinds and namespaces, and its member digest
    pending unless `current` has the render's; None when `current` says all that already (no member will be written
    where the live parent does not point, nor a member the live digest leaves out)."""
    had = ((current or {}).get("metadata") or {}).get("annotations") or {}
    rendered = parent["metadata"]["annotations"]
    union = {key: ",".join(sorted(set(filter(None, rendered[key].split(","))) |
                                  set(filter(None, had.get(key, "").split(",")))))
             for key in (APPLYSET_KINDS, APPLYSET_NAMESPACES)}
    if current is not None:  # without a live parent there are no members yet, so none the render leaves out
        union.update(_members(rendered, had))
        if all(had.get(k) == v for k, v in union.items()):
            return None
    return {**parent, "metadata": {**parent["metadata"], "annotations": {**rendered, **union}}}


def _members(rendered: dict[str, str], had: dict[str, str]) -> dict[str, str]:
    """The member digest to write before the members: pending, unless the live parent has the render's already."""
    digest = rendered.get(APPLYSET_MEMBERS)
    return {} if digest is None or had.get(APPLYSET_MEMBERS) == digest else {APPLYSET_MEMBERS: PENDING}


def emit(outcomes: Iterable[Outcome], on_outcome: OnOutcome | None) -> None:
    """Report outcomes, in order, to the caller's callback (the CLI prints one line each)."""
    for done in outcomes:
        if on_outcome:
            on_outcome(done)


def _create_namespaces(objs: list[Object], live: Live, *, cluster: ClusterClient, force: bool) -> list[Outcome]:
    """Create the rendered Namespaces that do not exist yet, so the server can dry-run what goes into them."""
    missing = [o for o in objs if o["kind"] == "Namespace" and live.of(o) is None]
    parallel.values(lambda o: cluster.apply(o, force=force), missing)
    return [outcome(o, "created") for o in missing]


def _roll_back(created: list[Outcome], cluster: ClusterClient) -> list[Outcome]:
    """Delete the Namespaces created for a check that failed (they hold nothing of meshreg's yet)."""
    for namespace, _, error in parallel.each(lambda o: delete(cluster, o.obj), created):
        if error is not None:
            raise ClusterError(f"{namespace} was created for the check and could not be deleted again: {error}") \
                from error
    return created


def wave(kind: str, namespace: str | None, namespaces: set[str]) -> int:
    """0: Namespaces; 1: what workloads use and the policies that guard them; 2: workloads, and the objects
    published outside the rendered namespaces (addresses are published once what they point to exists)."""
    if kind == "Namespace":
        return 0
    return 2 if kind in WORKLOADS or _outside(namespace, namespaces) else 1


def _apply_waves(checked: Plan, *, created: list[Outcome], namespaces: set[str], cluster: ClusterClient, force: bool,
                 on_outcome: OnOutcome | None, parent: Parent | None = None) -> list[Outcome]:
    """Apply what the dry run says would change, a wave at a time, each wave at once; stop after a wave with a
    refusal and say what was applied. The parent is widened after the Namespaces and settled after prune."""
    done, parent = list(created), parent or Parent(None, None)
    # prune deletes the "would prune" ones, after the waves; the parent has its own moments
    applying = [o for o in checked.outcomes if o.action != "would prune" and o is not parent.planned]
    for step in (0, 1, 2):
        if step == 1:
            parent.widen(cluster=cluster, force=force)
        ok, failed = _apply_wave([o for o in applying if wave(o.kind, o.namespace, namespaces) == step],
                                 cluster=cluster, force=force, versions=checked.versions)
        emit(ok, on_outcome)
        done += ok
        if failed:
            raise _apply_failed(failed, done, applying)
    return done


def _apply_wave(batch: list[Outcome], *, cluster: ClusterClient, force: bool,
                versions: dict[Key, str | None]) -> tuple[list[Outcome], list[ClusterError]]:
    """Send one wave at once: what was applied, and every refusal."""
    results = parallel.each(lambda o: _send(o, cluster=cluster, force=force, versions=versions), batch)
    ok = [applied for _, applied, error in results if error is None and applied is not None]
    return ok, [error for _, _, error in results if error is not None]


def _send(planned: Outcome, *, cluster: ClusterClient, force: bool, versions: dict[Key, str | None]) -> Outcome:
    """Apply one object the dry run says would change; what happened to it."""
    if planned.action == "unchanged":
        return planned
    result = cluster.apply(planned.obj, force=force)
    # A controller wrote between the read and the dry run: the apply then writes nothing, and says so.
    same = planned.action == "changed" and result["metadata"].get("resourceVersion") == versions.get(planned.key)
    return replace(planned, action="unchanged") if same else planned


def _apply_failed(failed: list[ClusterError], done: list[Outcome], planned: list[Outcome]) -> ClusterError:
    applied = ", ".join(f"{o} ({o.action})" for o in done if o.action != "unchanged") or "nothing"
    refused = {getattr(e, "subject", None) for e in failed}
    left = [str(o) for o in planned if o.key not in {d.key for d in done} and str(o) not in refused]
    return ClusterError("; ".join(map(str, failed)) + "; refused on the real apply, after the dry run had passed; "
                        f"applied before: {applied}" + (f"; not applied: {', '.join(left)}" if left else ""))


def _prune(strays: list[Object], *, cluster: ClusterClient, on_outcome: OnOutcome | None,
           applied: int) -> list[Outcome]:
    """Delete what this instance applied before and no longer renders (never a PVC or a Namespace)."""
    results = parallel.each(lambda o: delete(cluster, o), strays)
    out = [outcome(o, "pruned") for o, _, error in results if error is None]
    emit(out, on_outcome)
    failed = [str(error) for _, _, error in results if error is not None]
    if failed:
        raise ClusterError(f"{'; '.join(failed)} (all {applied} objects were applied; pruning stopped there)")
    return out


def delete(cluster: ClusterClient, obj: Object, *, dry_run: bool = False) -> bool:
    """Delete a rendered object: workloads in the foreground (they stay visible until their pods are gone)."""
    api_version, kind, namespace, name = key_of(obj)
    policy = "Foreground" if kind in FOREGROUND else "Background"
    return cluster.delete(api_version, kind, name, namespace=namespace, propagation=policy, dry_run=dry_run)
