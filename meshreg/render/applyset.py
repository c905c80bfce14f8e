"""The instance's ApplySet parent (KEP-3659): a ConfigMap in its namespace that names the set and records where its
members are, so `up`, prune and `down` find exactly this instance's objects, whatever another instance is called.

Its id label is derived from its own name and namespace (labels.set_id), every member carries that id as
`applyset.kubernetes.io/part-of`, and its annotations list the members' group-kinds and the namespaces other than its
own that hold members, sorted, as kubectl writes them. meshreg adds a digest of the members themselves (which
objects, not their content): an `up` that finds every member and the parent exactly as it would apply them knows
from it that nothing is left to prune (cluster/settled.py). It holds no data.
"""

from __future__ import annotations

from collections.abc import Iterable

from meshreg.config import Config
from meshreg.objects import Object
from meshreg.render import sha256
from meshreg.render.labels import (
    APPLYSET_ID,
    APPLYSET_KINDS,
    APPLYSET_MEMBERS,
    APPLYSET_NAMESPACES,
    APPLYSET_TOOLING,
    COMPONENT,
    TOOLING,
    applyset,
    common,
    parent_name,
)

__all__ = ["group_kind", "members_digest", "parent"]


def group_kind(obj: Object) -> str:
    """`Kind.group` (`Deployment.apps`), or `Kind` for the core group, as KEP-3659 writes group-kinds."""
    group = obj["apiVersion"].rpartition("/")[0]
    return f"{obj['kind']}.{group}" if group else obj["kind"]


def members_digest(members: Iterable[Object]) -> str:
    """A digest of which objects `members` are (group-kind, namespace, name), whatever their order."""
    keys = sorted(f"{group_kind(o)}/{o['metadata'].get('namespace') or ''}/{o['metadata']['name']}" for o in members)
    return "sha256:" + sha256.hexdigest("\n".join(keys).encode())[:32]


def member_annotations(members: Iterable[Object], *, namespace: str) -> dict[str, str]:
    """The parent's annotations for `members`: tooling, their group-kinds, the namespaces other than `namespace`, and
    the digest of which they are."""
    members = list(members)
    kinds = sorted({group_kind(o) for o in members})
    others = sorted({o["metadata"]["namespace"] for o in members if o["metadata"].get("namespace")} - {namespace})
    return {APPLYSET_TOOLING: TOOLING, APPLYSET_KINDS: ",".join(kinds), APPLYSET_NAMESPACES: ",".join(others),
            APPLYSET_MEMBERS: members_digest(members)}


def parent(cfg: Config, members: list[Object]) -> Object:
    """The parent ConfigMap of `members` (every other object the render has)."""
    labels = {**common(cfg), COMPONENT: "applyset", APPLYSET_ID: applyset(cfg)}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": parent_name(cfg), "namespace": cfg.namespace, "labels": labels,
                         "annotations": member_annotations(members, namespace=cfg.namespace)}}
