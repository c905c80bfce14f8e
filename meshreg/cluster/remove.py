"""`meshreg down`: delete what `up` applied, workloads first, and leave alone what is not this instance's."""

from __future__ import annotations

from meshreg.cluster import live as lives
from meshreg.cluster import parallel
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.apply import KEEP, OnOutcome, delete, emit, namespaces_of, ordered, render_instance, wave
from meshreg.cluster.live import Key, instance_of, key_of
from meshreg.cluster.outcomes import Outcome, named, outcome
from meshreg.errors import ClusterError


def remove(*, manifests: list[Object], cluster: ClusterClient, purge: bool = False,
           on_outcome: OnOutcome | None = None) -> list[Outcome]:
    """Delete meshreg's objects, workloads first; keeps the PVC and its Namespace unless purge. 404 is fine."""
    objs = list(reversed(ordered(manifests)))
    live = lives.read(manifests=objs, cluster=cluster)
    instance = render_instance(objs)
    namespaces = namespaces_of(objs)
    actions = {key_of(o): _keep(o, live.of(o), instance=instance, purge=purge) for o in objs}
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


def _keep(obj: Object, current: Object | None, *, instance: str | None, purge: bool) -> str | None:
    """Why `down` leaves an object alone (kept, absent, another owner's), or None when it deletes it."""
    if current is None:
        return "absent"
    if obj["kind"] in KEEP and not purge:
        return "kept"
    who = instance_of(current)
    if who != instance:
        return f"left alone (owned by meshreg instance {who})" if who else "left alone (not managed by meshreg)"
    return None
