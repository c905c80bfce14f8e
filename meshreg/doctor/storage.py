"""Check 8: each registry's volume can bind: its PVC is bound already, or the configured StorageClass exists, or a
default one does (or, with none, an unclaimed volume without a class fits); and the class's binding mode. A registry
on object storage has no volume to check."""

from __future__ import annotations

from kubernetes.utils import parse_quantity

from meshreg.cluster.api import Object
from meshreg.config import Registry
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, fail, ok, warn
from meshreg.errors import ClusterError

CHECK = "storage"
DEFAULT = "storageclass.kubernetes.io/is-default-class"


def check(facts: Facts) -> list[Result]:
    claims = {o["metadata"]["name"] for o in facts.manifests if o["kind"] == "PersistentVolumeClaim"}
    on_volumes = [reg for reg in facts.cfg.registries if f"{reg.name}-data" in claims]
    if not on_volumes:
        return [ok(CHECK, "no PersistentVolumeClaim to bind: every registry stores its images in object storage")]
    return [volume(facts, reg) for reg in on_volumes]


def volume(facts: Facts, reg: Registry) -> Result:
    """Whether a registry's claim is bound or can bind: by its own class once it has one, else by the config's."""
    ns = facts.cfg.namespace
    claim = f"{reg.name}-data"
    pvc = _claim(facts, ns, claim)
    if pvc is not None and (pvc.get("status") or {}).get("phase") == "Bound":
        cls = _class_of(pvc) or "no class"
        return ok(CHECK, f"PVC {ns}/{claim} is bound to {pvc['spec'].get('volumeName')} ({cls})")
    if pvc is not None and _class_of(pvc) is not None:
        return _pending(facts, pvc, reg)  # without a class yet, a default one is still assigned when it appears
    return _configured(facts, claim=claim, reg=reg)


def _claim(facts: Facts, ns: str, claim: str) -> Object | None:
    """The claim, from the namespace's claims (which `up` reads anyway), or by name where listing is refused."""
    try:
        return next((c for c in facts.collection("v1", "PersistentVolumeClaim", ns)
                     if c["metadata"]["name"] == claim), None)
    except ClusterError:
        return facts.cluster.get("v1", "PersistentVolumeClaim", claim, namespace=ns)


def _class_of(pvc: Object) -> str | None:
    """A claim's storageClassName: None when it has none yet, "" for none at all."""
    cls: str | None = (pvc.get("spec") or {}).get("storageClassName")
    return cls


def _configured(facts: Facts, *, claim: str, reg: Registry) -> Result:
    """A claim not there yet (or without a class): storage.storageClassName decides."""
    wanted = reg.storage.storage_class_name
    if wanted == "":
        return _static(facts, claim=claim, reg=reg, why="storageClassName is \"\"")
    if wanted:
        return _named(facts.storage_classes(), claim=claim, reg=reg, wanted=wanted)
    return _default(facts, claim=claim, reg=reg)


def _named(classes: list[Object], *, claim: str, reg: Registry, wanted: str) -> Result:
    """The claim asks for StorageClass `wanted`: does it exist?"""
    found = next((c for c in classes if c["metadata"]["name"] == wanted), None)
    if found is None:
        known = ", ".join(sorted(c["metadata"]["name"] for c in classes)) or "none"
        return fail(CHECK, f"StorageClass {wanted} (registry {reg.name}) does not exist (classes: {known})",
                    "set storage.storageClassName to an existing class, or null for the default one")
    return ok(CHECK, f"{claim}: StorageClass {wanted} exists ({_mode(found)})")


def _default(facts: Facts, *, claim: str, reg: Registry) -> Result:
    """The claim asks for no class: the default one gets it, or without one, a volume without a class."""
    defaults = sorted((c for c in facts.storage_classes()
                       if (c["metadata"].get("annotations") or {}).get(DEFAULT) == "true"),
                      key=lambda c: c["metadata"].get("creationTimestamp") or "")
    if not defaults:
        return _static(facts, claim=claim, reg=reg, why="no default StorageClass")
    chosen = defaults[-1]  # with several defaults, Kubernetes uses the newest
    several = f" (newest of {len(defaults)} defaults)" if len(defaults) > 1 else ""
    return ok(CHECK, f"{claim}: default StorageClass {chosen['metadata']['name']}{several} ({_mode(chosen)})")


def _pending(facts: Facts, pvc: Object, reg: Registry) -> Result:
    """A claim that exists but is not bound and has its class set: that class decides (it never changes)."""
    name = f"{pvc['metadata']['namespace']}/{pvc['metadata']['name']}"
    wanted = pvc["spec"]["storageClassName"]
    if not wanted:
        return _static(facts, claim=pvc["metadata"]["name"], reg=reg,
                       why=f"PVC {name} is not bound and asks for no class")
    found = next((c for c in facts.storage_classes() if c["metadata"]["name"] == wanted),
                 None)
    if found is None:
        return fail(CHECK, f"PVC {name} is not bound and its StorageClass {wanted} does not exist: it stays Pending",
                    f"create StorageClass {wanted}, or delete the claim (it holds no images yet) and run up again")
    if (found.get("volumeBindingMode") or "Immediate") == "WaitForFirstConsumer":
        return ok(CHECK, f"PVC {name} is not bound yet: StorageClass {wanted} ({_mode(found)})")
    return warn(CHECK, f"PVC {name} is not bound although StorageClass {wanted} binds at once ({_mode(found)})",
                f"kubectl -n {pvc['metadata']['namespace']} describe pvc {pvc['metadata']['name']} shows why "
                f"(provisioner {found.get('provisioner', '?')})")


def _mode(cls: Object) -> str:
    mode = cls.get("volumeBindingMode") or "Immediate"
    when = "binds when the registry pod is scheduled" if mode == "WaitForFirstConsumer" else "binds at once"
    return f"{cls.get('provisioner', '?')}, {mode}: {when}"


def _static(facts: Facts, *, claim: str, reg: Registry, why: str) -> Result:
    """Without a class, the claim binds only to an Available volume without a class that is large enough."""
    size = parse_quantity(reg.storage.size)
    fits = [pv for pv in facts.volumes() if _fits(pv, size)]
    if fits:
        return ok(CHECK, f"{claim}: {why}; {len(fits)} unclaimed volume(s) without a class fit "
                         f"{reg.storage.size}")
    return fail(CHECK, f"{claim}: {why} and no Available ReadWriteOnce volume without a class of at least "
                       f"{reg.storage.size}: the claim would stay Pending",
                "install a provisioner with a default StorageClass, or set storage.storageClassName, or create "
                "a matching PersistentVolume")


def _fits(pv: Object, size: object) -> bool:
    """An Available ReadWriteOnce PersistentVolume without a class, of at least `size` (a parsed quantity)."""
    return ((pv.get("status") or {}).get("phase") == "Available"
            and not (pv.get("spec") or {}).get("storageClassName")
            and "ReadWriteOnce" in (pv["spec"].get("accessModes") or [])
            and parse_quantity((pv["spec"].get("capacity") or {}).get("storage", "0")) >= size)
