"""What `up` does when a registry's `storage.size` or `storageClassName` changes: the live claim decides.

`meshreg render` is pure and never sees a cluster, so it cannot know how large a claim is now: a shrink is a relation
between the config and the live claim, and only `up` (which reads the claim anyway) sees both. So `up` decides here,
before anything changes: it grows a bound claim whose StorageClass allows expansion (and says the filesystem resize
may need a pod restart), and refuses, in words a user can act on, a shrink, a class change, an unbound claim and a
class that cannot expand. GitOps tools applying a render get the API server's own refusal for the same cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.client import describe
from meshreg.cluster.errors import PermissionDenied

if TYPE_CHECKING:
    from meshreg.cluster.live import Live


@dataclass(frozen=True)
class Change:
    """A claim whose size or class the render changes: `refusal` stops `up` before any change; `note` is for after."""

    obj: Object
    refusal: str | None = None
    note: str | None = None


def review(*, manifests: list[Object], live: Live, cluster: ClusterClient) -> list[Change]:
    """Every rendered claim whose live counterpart would change size or class, with what `up` does about it."""
    out = []
    for obj in manifests:
        current = live.of(obj) if obj["kind"] == "PersistentVolumeClaim" else None
        change = _review(obj, current, cluster=cluster, manifests=manifests) if current else None
        if change:
            out.append(change)
    return out


def _size(pvc: Object) -> str | None:
    return (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")


def quantity(text: str | None) -> Decimal:
    """A Kubernetes quantity ("1Gi", "500m") as a number; ValueError when it is none."""
    from kubernetes.utils.quantity import parse_quantity

    return parse_quantity(text)


def _review(obj: Object, current: Object, *, cluster: ClusterClient, manifests: list[Object]) -> Change | None:
    name = describe(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
    refusal = _class_refusal(name, obj, current)
    if refusal:
        return Change(obj, refusal=refusal)
    want, has = _size(obj), _size(current)
    if want == has or quantity(want) == quantity(has):
        return None
    status = current.get("status") or {}
    if status.get("phase") != "Bound":
        return Change(obj, refusal=_unbound(name, obj, status, want=want, has=has))
    if quantity(want) < quantity(has):
        return _lower(name, obj, capacity=(status.get("capacity") or {}).get("storage") or has, want=want, has=has)
    return _grow(name, obj, current, cluster=cluster, manifests=manifests, want=want, has=has)


def _class_refusal(name: str, obj: Object, current: Object) -> str | None:
    """The render names another StorageClass than the claim has: that never changes on an existing claim."""
    live_class = (current.get("spec") or {}).get("storageClassName") or ""
    wanted_class = (obj.get("spec") or {}).get("storageClassName")
    if wanted_class is None or wanted_class == live_class:
        return None
    return (f"{name}: storage.storageClassName {wanted_class!r} differs from the claim's {live_class!r}, and the "
            f"class of an existing claim cannot change: set it back to {live_class!r}, or move the images to a new "
            "registry (docs/operations.md)")


def _lower(name: str, obj: Object, *, capacity: str | None, want: str | None, has: str | None) -> Change:
    """A smaller request: refused below the volume's size, accepted down to it (an expansion that did not finish)."""
    if quantity(want) < quantity(capacity):
        return Change(obj, refusal=f"{name}: storage.size {want} is smaller than the claim's {capacity}, and "
                      f"Kubernetes never shrinks a volume: set storage.size back to {has} (to use less space, "
                      "move the images to a new, smaller registry: docs/operations.md)")
    return Change(obj, note=f"{name}: the request goes back from {has} to {want}, the size the volume has "
                  "(a claim may lower a request whose expansion has not finished)")


def _unbound(name: str, obj: Object, status: Object, *, want: str | None, has: str | None) -> str:
    ns, claim = obj["metadata"].get("namespace"), obj["metadata"]["name"]
    return (f"{name} is {status.get('phase') or 'Pending'}, not bound to a volume, and only a bound claim can be "
            f"resized: it holds no images yet, so delete it (kubectl -n {ns} delete pvc {claim}) and run meshreg up "
            f"again to create it with {want}, or set storage.size back to {has}")


def _grow(name: str, obj: Object, current: Object, *, cluster: ClusterClient, manifests: list[Object],
          want: str | None, has: str | None) -> Change:
    spec = current.get("spec") or {}
    cls = spec.get("storageClassName")
    keep = f"set storage.size back to {has}"
    if not cls:
        return Change(obj, refusal=f"{name}: cannot grow from {has} to {want}: the claim has no StorageClass (it "
                      f"is bound to PersistentVolume {spec.get('volumeName') or '?'} directly), and only claims of "
                      f"a StorageClass with allowVolumeExpansion: true can grow; {keep}, or grow that volume "
                      "outside Kubernetes")
    refusal = _not_expandable(cluster, cls, growth=f"{name}: cannot grow from {has} to {want}", keep=keep)
    if refusal:
        return Change(obj, refusal=refusal)
    return Change(obj, note=_grow_note(name, obj, manifests=manifests, want=want, has=has))


def _not_expandable(cluster: ClusterClient, cls: str, *, growth: str, keep: str) -> str | None:
    """Why StorageClass `cls` cannot expand a claim (None: it can, or meshreg may not read it and the dry run's
    resize admission check decides)."""
    try:
        storage_class = cluster.get("storage.k8s.io/v1", "StorageClass", cls)
    except PermissionDenied:
        return None
    if storage_class is None:
        return f"{growth}: its StorageClass {cls} no longer exists, so nothing can expand the volume; {keep}"
    if storage_class.get("allowVolumeExpansion") is not True:
        provisioner = storage_class.get("provisioner") or "its provisioner"
        return (f"{growth}: StorageClass {cls} does not allow volume expansion (allowVolumeExpansion is not true); "
                f"{keep}, or, if {provisioner} can expand volumes, allow it: kubectl patch storageclass {cls} -p "
                "'{\"allowVolumeExpansion\": true}'")
    return None


def _grow_note(name: str, obj: Object, *, manifests: list[Object], want: str | None, has: str | None) -> str:
    ns, claim = obj["metadata"].get("namespace"), obj["metadata"]["name"]
    users = [f"deployment/{d['metadata']['name']}" for d in manifests if d["kind"] == "Deployment"
             and d["metadata"].get("namespace") == ns and claim in _claims(d)]
    restart = f"kubectl -n {ns} rollout restart {' '.join(users)}" if users else "restart the pods that mount it"
    return (f"{name} grows from {has} to {want}: the storage driver expands the volume, and unless "
            "it can grow a mounted filesystem, the filesystem grows only when the registry pod restarts "
            f"({restart}); `kubectl -n {ns} describe pvc {claim}` shows the condition "
            "FileSystemResizePending until then")


def _claims(workload: Object) -> set[str]:
    volumes = ((workload.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []
    return {v["persistentVolumeClaim"]["claimName"] for v in volumes
            if (v.get("persistentVolumeClaim") or {}).get("claimName") is not None}
