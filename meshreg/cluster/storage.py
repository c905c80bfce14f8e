"""What `up` does when a registry's `storage.size` or `storageClassName` changes: the live claim decides.

`meshreg render` is pure and never sees a cluster, so it cannot know how large a claim is now: a shrink is a relation
between the config and the live claim, and only `up` (which reads the claim anyway) sees both. So `up` decides here,
before anything changes: it grows a bound claim whose StorageClass allows expansion (and says the filesystem resize
may need a pod restart), and refuses, in words a user can act on, a shrink, a class change, an unbound claim and a
class that cannot expand. GitOps tools applying a render get the API server's own refusal for the same cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshreg.cluster.client import describe
from meshreg.cluster.errors import PermissionDenied


@dataclass(frozen=True)
class Change:
    """A claim whose size or class the render changes: `refusal` stops `up` before any change; `note` is for after."""

    obj: dict
    refusal: str | None = None
    note: str | None = None


def review(*, manifests, live, cluster) -> list[Change]:
    """Every rendered claim whose live counterpart would change size or class, with what `up` does about it."""
    out = []
    for obj in manifests:
        current = live.of(obj) if obj["kind"] == "PersistentVolumeClaim" else None
        change = _review(obj, current, cluster=cluster, manifests=manifests) if current else None
        if change:
            out.append(change)
    return out


def _size(pvc: dict) -> str | None:
    return (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")


def _review(obj, current, *, cluster, manifests) -> Change | None:
    from kubernetes.utils.quantity import parse_quantity

    name = describe(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace"))
    live_class = (current.get("spec") or {}).get("storageClassName") or ""
    wanted_class = (obj.get("spec") or {}).get("storageClassName")
    if wanted_class is not None and wanted_class != live_class:
        return Change(obj, refusal=f"{name}: storage.storageClassName {wanted_class!r} differs from the claim's "
                      f"{live_class!r}, and the class of an existing claim cannot change: set it back to "
                      f"{live_class!r}, or move the images to a new registry (docs/operations.md)")
    want, has = _size(obj), _size(current)
    if want == has or parse_quantity(want) == parse_quantity(has):
        return None
    status = current.get("status") or {}
    if status.get("phase") != "Bound":
        return Change(obj, refusal=_unbound(name, obj, status, want=want, has=has))
    capacity = (status.get("capacity") or {}).get("storage") or has
    if parse_quantity(want) < parse_quantity(has):
        if parse_quantity(want) < parse_quantity(capacity):
            return Change(obj, refusal=f"{name}: storage.size {want} is smaller than the claim's {capacity}, and "
                          f"Kubernetes never shrinks a volume: set storage.size back to {has} (to use less space, "
                          "move the images to a new, smaller registry: docs/operations.md)")
        return Change(obj, note=f"{name}: the request goes back from {has} to {want}, the size the volume has "
                      "(a claim may lower a request whose expansion has not finished)")
    return _grow(name, obj, current, cluster=cluster, manifests=manifests, want=want, has=has)


def _unbound(name, obj, status, *, want, has) -> str:
    ns, claim = obj["metadata"].get("namespace"), obj["metadata"]["name"]
    return (f"{name} is {status.get('phase') or 'Pending'}, not bound to a volume, and only a bound claim can be "
            f"resized: it holds no images yet, so delete it (kubectl -n {ns} delete pvc {claim}) and run meshreg up "
            f"again to create it with {want}, or set storage.size back to {has}")


def _grow(name, obj, current, *, cluster, manifests, want, has) -> Change:
    spec = current.get("spec") or {}
    cls = spec.get("storageClassName")
    keep = f"set storage.size back to {has}"
    if not cls:
        return Change(obj, refusal=f"{name}: cannot grow from {has} to {want}: the claim has no StorageClass (it "
                      f"is bound to PersistentVolume {spec.get('volumeName') or '?'} directly), and only claims of "
                      f"a StorageClass with allowVolumeExpansion: true can grow; {keep}, or grow that volume "
                      "outside Kubernetes")
    try:
        storage_class = cluster.get("storage.k8s.io/v1", "StorageClass", cls)
    except PermissionDenied:
        storage_class = {"allowVolumeExpansion": True}  # cannot tell: the dry run runs the resize admission check
    if storage_class is None:
        return Change(obj, refusal=f"{name}: cannot grow from {has} to {want}: its StorageClass {cls} no longer "
                      f"exists, so nothing can expand the volume; {keep}")
    if storage_class.get("allowVolumeExpansion") is not True:
        provisioner = storage_class.get("provisioner") or "its provisioner"
        return Change(obj, refusal=f"{name}: cannot grow from {has} to {want}: StorageClass {cls} does not allow "
                      f"volume expansion (allowVolumeExpansion is not true); {keep}, or, if {provisioner} can "
                      f"expand volumes, allow it: kubectl patch storageclass {cls} -p "
                      "'{\"allowVolumeExpansion\": true}'")
    ns, claim = obj["metadata"].get("namespace"), obj["metadata"]["name"]
    users = [f"deployment/{d['metadata']['name']}" for d in manifests if d["kind"] == "Deployment"
             and d["metadata"].get("namespace") == ns and claim in _claims(d)]
    restart = f"kubectl -n {ns} rollout restart {' '.join(users)}" if users else "restart the pods that mount it"
    return Change(obj, note=f"{name} grows from {has} to {want}: the storage driver expands the volume, and unless "
                  "it can grow a mounted filesystem, the filesystem grows only when the registry pod restarts "
                  f"({restart}); `kubectl -n {ns} describe pvc {claim}` shows the condition "
                  "FileSystemResizePending until then")


def _claims(workload: dict) -> set[str]:
    volumes = ((workload.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []
    return {(v.get("persistentVolumeClaim") or {}).get("claimName") for v in volumes} - {None}
