"""`meshreg down`: delete what `up` applied, workloads first, and leave alone what is not this instance's.

What is this instance's is decided as `up` decides it (cluster/ownership.py): its ApplySet's label, or, for objects
applied before ApplySets, the instance label and the namespace they belong to. With a prune scope, `down` also
deletes the members the config no longer renders (a push proxy disabled since the last `up`), never a claim or a
Namespace among them.
"""

from __future__ import annotations

from meshreg.cluster import live as lives
from meshreg.cluster import parallel
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.apply import KEEP, OnOutcome, delete, emit, namespaces_of, ordered, wave
from meshreg.cluster.live import Key, Live, Scope, key_of
from meshreg.cluster.outcomes import Outcome, named, outcome
from meshreg.cluster.ownership import Identity, Ownership, describe, owner_of
from meshreg.errors import ClusterError
from meshreg.render.labels import is_parent


def remove(*, manifests: list[Object], cluster: ClusterClient, purge: bool = False,
           on_outcome: OnOutcome | None = None, scope: Scope | None = None,
           live: Live | None = None) -> list[Outcome]:
    """Delete meshreg's objects, workloads first; keeps the PVC, its Namespace and the instance's ApplySet parent
    unless purge. 404 is fine. `scope`: where to look for members the render no longer has (and `live`: what is
    there, when the caller has read it)."""
    rendered = list(reversed(ordered(manifests)))
    live = live or lives.read(manifests=rendered, cluster=cluster, scope=scope)
    ownership = Ownership(Identity.of(rendered), live)
    strays = live.strays(manifests=rendered, mine=ownership.mine, scope=scope) if scope else []
    objs = rendered + list(reversed(ordered(sorted(strays, key=lambda o: str(key_of(o))))))
    namespaces = namespaces_of(rendered)
    actions = {key_of(o): _keep(o, live.of(o), ownership=ownership, cluster=cluster, purge=purge) for o in objs}
    for step in (2, 1, 0):  # workloads and published objects, then what they used, then the Namespace
        batch = [o for o in objs if actions[key_of(o)] is None and wave(o["kind"], key_of(o)[2], namespaces) == step]
        _delete_wave(batch, objs, actions=actions, cluster=cluster)
    outcomes = [outcome(o, actions[key_of(o)] or "") for o in objs]
    emit(outcomes, on_outcome)
    return outcomes


def _delete_wave(batch: list[Object], objs: list[Object], *, actions: dict[Key, str | None],
                 cluster: ClusterClient) -> None:
    """Delete `batch` at once, recording in `actions` whether each was deleted or already gone; on a failure, say
    what was deleted before it."""
    for obj, gone, error in parallel.each(lambda o: delete(cluster, o), batch):
        if error is not None:
            raise ClusterError(f"{error}; deleted before the failure: " + (", ".join(
                named(o) for o in objs if actions[key_of(o)] == "deleted") or "nothing"))
        actions[key_of(obj)] = "deleted" if gone else "absent"


def _keep(obj: Object, current: Object | None, *, ownership: Ownership, cluster: ClusterClient,
          purge: bool) -> str | None:
    """Why `down` leaves an object alone (kept, absent, another owner's), or None when it deletes it."""
    if current is None:
        return "absent"
    if not ownership.mine(current):
        owner = owner_of(current)
        if not owner.managed:
            return "left alone (not managed by meshreg)"
        return f"left alone (owned by meshreg instance {describe(cluster, ownership.whose(current), owner.set_id)})"
    if not purge and (obj["kind"] in KEEP or is_parent(obj)):
        return "kept"
    return None
