"""An `up` with nothing to do, known from its dry run alone.

The API server answers a server-side apply that changes nothing with the live object itself, managedFields untouched;
one that changes anything stamps the manager's entry with the server's clock (a dry run too). So when every rendered
object's dry run answers with meshreg's entry older than the server's clock before the dry run was sent, every object
already is exactly what `up` would apply: labelled for this instance, and not being deleted (checked). The parent then
holds the digest of the rendered members (render/applyset.py), which it only does once an `up` that wrote those
members has pruned: an `up` that changes which objects are members marks the parent pending before its first write
(apply.Parent). Nothing is then left to prune, and the read of what exists (a LIST per kind and namespace) would only
repeat the dry run's answers. The parent is asked first, alone: unless it is settled, nothing else is asked before
the read. Otherwise `up` reads as usual and its apply takes the answers it has (a first `up` asks for the parent once
more, after creating its namespace).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from meshreg.cluster import parallel
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.client import FIELD_MANAGER
from meshreg.cluster.live import Key, Live, key_of
from meshreg.errors import ClusterError
from meshreg.render.labels import is_parent

__all__ = ["SKEW", "Answer", "dry_run", "probe", "reusable"]

Answer = tuple[Object | None, ClusterError | None]  # the object the server would hold, or why not
# How far the clock behind a Date header (another API server of the same cluster, a proxy) may run ahead of the one
# that stamps the dry run: entries are stamped in whole seconds, and NTP keeps control planes well within this. An
# `up` this soon after a change reads as before.
SKEW = 5.0


def probe(cluster: ClusterClient, objects: list[Object], *, force: bool) -> tuple[Live | None, dict[Key, Answer]]:
    """What exists when everything is settled (else None), and the dry run's answers so far: the parent's, and when it
    is settled, everyone's. `cluster` has answered before: its clock then is the server's before this dry run."""
    since = cluster.server_time()
    parents = [o for o in objects if is_parent(o)]
    answers = dry_run(cluster, parents, force=force)
    if since is None or not parents or not _all_settled(answers.values(), before=since - SKEW):
        return None, answers
    answers.update(dry_run(cluster, [o for o in objects if key_of(o) not in answers], force=force))
    return _live(objects, answers, before=since - SKEW), answers


def _live(objects: list[Object], answers: dict[Key, Answer], *, before: float) -> Live | None:
    """The answers as what exists, when every object's is settled."""
    mine = [answers[key_of(o)] for o in objects]
    if not _all_settled(mine, before=before):
        return None
    return Live(objects={key_of(o): cast(Object, result) for o, (result, _) in zip(objects, mine, strict=True)})


def dry_run(cluster: ClusterClient, objects: Iterable[Object], *, force: bool) -> dict[Key, Answer]:
    """The server's answer to a dry run of each object, all sent at once."""
    return {key_of(o): (result, error) for o, result, error in
            parallel.each(lambda o: cluster.apply(o, dry_run=True, force=force), list(objects))}


def reusable(answers: dict[Key, Answer]) -> dict[Key, Answer]:
    """The answers a later plan may take instead of asking again: the server accepted them, and the object is not on
    its way out (`up` waits for those, then asks again)."""
    return {key: (result, None) for key, (result, error) in answers.items()
            if error is None and result is not None and not result["metadata"].get("deletionTimestamp")}


def _all_settled(answers: Iterable[Answer], *, before: float) -> bool:
    """The server accepted each dry run, and none changes anything meshreg applied since before `before`."""
    return all(error is None and result is not None and _untouched(result, before=before) for result, error in answers)


def _untouched(result: Object, *, before: float) -> bool:
    """meshreg's applied fields were last changed before `before`, and the object is not being deleted."""
    meta = result.get("metadata") or {}
    stamps = [_seconds(e.get("time")) for e in meta.get("managedFields") or []
              if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply"]
    return bool(stamps) and not meta.get("deletionTimestamp") and all(s is not None and s < before for s in stamps)


def _seconds(stamp: object) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
