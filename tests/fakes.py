"""An in-memory stand-in for meshreg.cluster.client.Cluster with the API server's semantics where meshreg relies on them.

resourceVersion bumps only on a real change; get/delete of a missing object is None/False (404); server-side apply
tracks which field manager owns which leaf field and raises ConflictError (409) when another manager owns a field
whose value would change, unless force; dry-run computes the result without persisting, after validation and
admission, which run on a dry run exactly as on a real request: names (422), the namespace existing (404) and not
being deleted (403), a claim's resize rules (422 from validation, then 403 from the PersistentVolumeClaimResize
plugin), and any `admission` hooks a test adds (e.g. `quota`). Errors are built from Status bodies like the real
server's and translated by meshreg's own `errors.translate`, so a refusal reads the same as on the wire.
"""

from __future__ import annotations

import copy
import itertools
import re
import threading

from kubernetes.utils.quantity import parse_quantity

from meshreg.cluster.client import KINDS, describe
from meshreg.cluster.errors import translate
from meshreg.errors import ClusterError

ISTIO_GROUPS = {
    "security.istio.io/v1": {"authorizationpolicies", "peerauthentications", "requestauthentications"},
    "networking.istio.io/v1": {"gateways", "virtualservices", "destinationrules", "serviceentries"},
}
# Istio's sidecar injector webhook as istioctl installs it, selecting namespaces labelled istio-injection=enabled.
INJECTOR = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "istio-sidecar-injector"},
            "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "namespaceSelector": {
                "matchExpressions": [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]}}]}
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _leaves(value, prefix=()):
    """Leaf paths of a nested dict; lists are leaves (atomic), as in a simple structured-merge model."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaves(v, prefix + (k,))
    else:
        yield prefix, value


def _lookup(obj, path):
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _assign(obj, path, value):
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    obj[path[-1]] = copy.deepcopy(value)


def _remove(obj, path):
    parents = []
    for part in path[:-1]:
        parents.append((obj, part))
        obj = obj.get(part, {})
    obj.pop(path[-1], None)
    for parent, part in reversed(parents):  # drop maps left empty
        if parent.get(part) == {}:
            del parent[part]


_MISSING = object()
_SERVER_OWNED = {("metadata", "resourceVersion"), ("metadata", "generation"), ("metadata", "uid"),
                 ("metadata", "creationTimestamp")}


class FakeCluster:
    """Same interface as meshreg.cluster.client.Cluster; `objects` is the whole cluster state."""

    def __init__(self, *, served=None, server="https://fake.invalid:6443"):
        self.server = server
        self.objects: dict[tuple, dict] = {}
        self.owners: dict[tuple, dict[tuple, str]] = {}  # key -> leaf path -> manager
        self.served_groups = copy.deepcopy(ISTIO_GROUPS if served is None else served)
        self.requests: list[tuple] = []  # (verb, key or kind, options) for assertions on what was sent
        self.failures: dict[tuple, ClusterError] = {}  # (verb, kind, name) -> error to raise
        self.on_apply = []  # callables(obj) run after a persisted apply: play a controller
        self.admission = [_pvc_resize]  # callables(cluster, obj, live) run on every apply, dry run or not
        self.warnings: list[str] = []
        self._lock = threading.RLock()  # meshreg sends requests from several threads
        self._rv = itertools.count(1000)
        for ns in ("default", "kube-system", "kube-public", "istio-system"):  # what every cluster has
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # --- reads
    def version(self) -> dict:
        self._maybe_fail("get", "version", "")
        return {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}

    def served(self, api_version):
        return set(self.served_groups.get(api_version, set()))

    def get(self, api_version, kind, name, *, namespace=None):
        with self._lock:
            return self._get(api_version, kind, name, namespace=namespace)

    def _get(self, api_version, kind, name, *, namespace):
        self.requests.append(("get", (api_version, kind, namespace, name), {}))
        self._maybe_fail("get", kind, name)
        obj = self.objects.get(self._key(api_version, kind, namespace, name))
        return copy.deepcopy(obj)

    def list(self, api_version, kind, *, namespace=None, label_selector=None, field_selector=None):
        with self._lock:
            return self._list(api_version, kind, namespace=namespace, label_selector=label_selector)

    def _list(self, api_version, kind, *, namespace, label_selector):
        self.requests.append(("list", (api_version, kind, namespace), {"labelSelector": label_selector}))
        self._maybe_fail("list", kind, "")
        wanted = dict(p.split("=", 1) for p in label_selector.split(",")) if label_selector else {}
        out = []
        for (av, k, ns, _), obj in sorted(self.objects.items(), key=lambda i: str(i[0])):
            labels = obj["metadata"].get("labels") or {}
            if (av, k) == (api_version, kind) and (namespace is None or ns == namespace) \
                    and all(labels.get(a) == b for a, b in wanted.items()):
                out.append(copy.deepcopy(obj))
        return out

    # --- writes
    def apply(self, obj, *, dry_run=False, force=False, field_manager="meshreg"):
        with self._lock:
            return self._apply(obj, dry_run=dry_run, force=force, field_manager=field_manager)

    def _apply(self, obj, *, dry_run, force, field_manager):
        key = self._key_of(obj)
        self.requests.append(("apply", key, {"dry_run": dry_run, "force": force, "manager": field_manager}))
        self._maybe_fail("patch", obj["kind"], obj["metadata"]["name"])
        live = self.objects.get(key)
        self._validate(obj, key, live)
        for admit in self.admission:
            admit(self, obj, copy.deepcopy(live))
        owners = dict(self.owners.get(key, {}))
        merged = copy.deepcopy(live) if live else {}
        applied = [(p, v) for p, v in _leaves(obj) if p not in _SERVER_OWNED]
        self._check_conflicts(live, owners, applied, field_manager=field_manager, force=force,
                              subject=describe(key[1], key[3], key[2]))
        for path, manager in list(owners.items()):  # fields this manager stopped applying are removed
            if manager == field_manager and path not in dict(applied):
                _remove(merged, path)
                del owners[path]
        for path, value in applied:
            _assign(merged, path, value)
            owners[path] = field_manager
        result = self._finish(live, merged)
        if not dry_run and result is not live:
            self.objects[key], self.owners[key] = result, owners
            for hook in self.on_apply:
                hook(self, result)
        return copy.deepcopy(result if result is not None else live)

    def delete(self, api_version, kind, name, *, namespace=None, propagation="Background", dry_run=False):
        with self._lock:
            return self._delete(api_version, kind, name, namespace=namespace, propagation=propagation,
                                dry_run=dry_run)

    def _delete(self, api_version, kind, name, *, namespace, propagation, dry_run):
        key = self._key(api_version, kind, namespace, name)
        self.requests.append(("delete", key, {"propagation": propagation, "dry_run": dry_run}))
        self._maybe_fail("delete", kind, name)
        if key not in self.objects:
            return False
        if not dry_run:
            del self.objects[key]
            if kind == "Namespace":  # the namespace controller deletes its contents
                for k in [k for k in self.objects if k[2] == name]:
                    del self.objects[k]
        return True

    # --- test helpers (not part of Cluster)
    def put(self, obj):
        """Store an object as-is (as a controller or another client would), bumping resourceVersion."""
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[self._key_of(obj)] = obj
        return obj

    def _finish(self, live, merged):
        if live is not None and merged == live:
            return live  # a no-op: the server writes nothing and keeps the resourceVersion
        merged["metadata"]["resourceVersion"] = str(next(self._rv))
        merged["metadata"].setdefault("uid", f"uid-{merged['metadata']['resourceVersion']}")
        if live is None or {k: v for k, v in merged.items() if k not in ("metadata", "status")} != \
                {k: v for k, v in live.items() if k not in ("metadata", "status")}:
            merged["metadata"]["generation"] = (live or {}).get("metadata", {}).get("generation", 0) + 1
        return merged

    def _check_conflicts(self, live, owners, applied, *, field_manager, force, subject):
        if live is None or force:
            return
        clashes = [(p, owners[p]) for p, v in applied
                   if p in owners and owners[p] != field_manager and _lookup(live, p) != v]
        if clashes:
            fields = "\n".join(f"- .{'.'.join(p)}" for p, _ in clashes)
            raise refusal(409, subject, f"Apply failed with {len(clashes)} conflicts: conflicts with "
                          f'"{clashes[0][1]}":\n{fields}', causes=[{
                              "reason": "FieldManagerConflict", "message": f'conflict with "{m}"',
                              "field": "." + ".".join(p)} for p, m in clashes])

    def _validate(self, obj, key, live):
        name, subject = obj["metadata"].get("name", ""), describe(obj["kind"], key[3], key[2])
        if not NAME.match(name) or len(name) > 253:
            raise refusal(422, subject, f'{obj["kind"]} "{name}" is invalid: metadata.name: Invalid value: "{name}"',
                          causes=[{"reason": "FieldValueInvalid", "field": "metadata.name",
                                   "message": f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must '
                                              "consist of lower case alphanumeric characters, '-' or '.'"}])
        namespace = self.objects.get(("v1", "Namespace", None, key[2])) if key[2] else {}
        if namespace is None:
            raise refusal(404, subject, f'namespaces "{key[2]}" not found', reason="NotFound",
                          details={"name": key[2], "kind": "namespaces"})
        if live is None and namespace.get("metadata", {}).get("deletionTimestamp"):
            raise refusal(403, subject, f'{_plural(obj)} "{name}" is forbidden: unable to create new content in '
                          f"namespace {key[2]} because it is being terminated", causes=[{
                              "reason": "NamespaceTerminating", "field": "metadata.namespace",
                              "message": f"namespace {key[2]} is being terminated"}])

    def _maybe_fail(self, verb, kind, name):
        error = self.failures.get((verb, kind, name)) or self.failures.get((verb, kind, "*"))
        if error:
            raise error

    def _key_of(self, obj):
        meta = obj["metadata"]
        return self._key(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

    @staticmethod
    def _key(api_version, kind, namespace, name):
        _, namespaced = KINDS[(api_version, kind)]
        return (api_version, kind, namespace if namespaced else None, name)


def ready_controller(cluster, obj):
    """Play the Deployment and DaemonSet controllers: every rollout completes at once on `nodes` nodes, with Running
    pods made from the template, injected by Istio's sidecar injector unless `cluster.inject` is False."""
    if obj["kind"] not in ("Deployment", "DaemonSet"):
        return
    live = cluster.objects[cluster._key_of(obj)]
    gen = live["metadata"].get("generation", 1)
    live["metadata"]["resourceVersion"] = str(next(cluster._rv))  # a status write is a write
    if obj["kind"] == "Deployment":
        n = live["spec"].get("replicas", 1)
        live["status"] = {"observedGeneration": gen, "replicas": n, "updatedReplicas": n, "readyReplicas": n,
                          "availableReplicas": n}
    else:
        n = getattr(cluster, "nodes", 2)
        live["status"] = {"observedGeneration": gen, "desiredNumberScheduled": n, "currentNumberScheduled": n,
                          "updatedNumberScheduled": n, "numberReady": n, "numberAvailable": n}
    _replace_pods(cluster, live, n)


def _replace_pods(cluster, workload, n):
    namespace, name = workload["metadata"]["namespace"], workload["metadata"]["name"]
    selector = workload["spec"]["selector"]["matchLabels"].items()
    for key in [k for k, pod in cluster.objects.items() if k[1] == "Pod" and k[2] == namespace
                and selector <= (pod["metadata"].get("labels") or {}).items()]:
        del cluster.objects[key]
    template = workload["spec"]["template"]
    for i in range(n):
        spec = copy.deepcopy(template["spec"])
        if getattr(cluster, "inject", True):
            _inject(spec, template["metadata"])
        cluster.put({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running"}, "spec": spec, "metadata": {
            "name": f"{name}-{workload['metadata'].get('generation', 1)}-{i}", "namespace": namespace,
            "labels": dict(template["metadata"].get("labels") or {})}})


def _inject(spec, meta):
    """What Istio's injector does to a pod: a gateway's `image: auto` filled in, else an istio-proxy sidecar."""
    if (meta.get("annotations") or {}).get("inject.istio.io/templates") == "gateway":
        for container in spec["containers"]:
            if container["name"] == "istio-proxy" and container.get("image") == "auto":
                container["image"] = "docker.io/istio/proxyv2:1.30.3"
    else:
        spec["containers"].append({"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.30.3"})


def _plural(obj):
    return KINDS[(obj["apiVersion"], obj["kind"])][0]


def refusal(code, subject, message, *, reason=None, causes=None, details=None):
    """The error meshreg raises for a Status body shaped like the API server's (see tests/cluster/lab_statuses.json)."""
    reason = reason or {403: "Forbidden", 404: "NotFound", 409: "Conflict", 422: "Invalid"}.get(code, "")
    details = dict(details or {})
    if causes:
        details["causes"] = causes
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code, **({"details": details} if details else {})}
    return translate(code, body, subject=subject)


def _size(pvc):
    return ((pvc.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")


def _pvc_resize(cluster, obj, live):
    """A claim's update rules on API server 1.36: validation first (spec immutable unless bound; no shrink below
    status.capacity), then the PersistentVolumeClaimResize admission plugin (the class must allow expansion)."""
    if obj["kind"] != "PersistentVolumeClaim" or live is None:
        return
    subject, name = describe(obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")), \
        obj["metadata"]["name"]
    want, has = _size(obj), _size(live)
    wanted_class = (obj.get("spec") or {}).get("storageClassName")
    live_class = live["spec"].get("storageClassName")
    bound = (live.get("status") or {}).get("phase") == "Bound"
    resized = want is not None and parse_quantity(want) != parse_quantity(has)
    if (wanted_class is not None and wanted_class != live_class) or (resized and not bound):
        raise refusal(422, subject, f'PersistentVolumeClaim "{name}" is invalid: spec: Forbidden: spec is immutable '
                      "after creation except resources.requests and volumeAttributesClassName for bound claims",
                      causes=[{"reason": "FieldValueForbidden", "field": "spec", "message": "Forbidden: spec is "
                               "immutable after creation except resources.requests and volumeAttributesClassName "
                               "for bound claims"}])
    if not resized:
        return
    capacity = (live.get("status") or {}).get("capacity", {}).get("storage", has)
    if parse_quantity(want) < parse_quantity(capacity):
        raise refusal(422, subject, f'PersistentVolumeClaim "{name}" is invalid: spec.resources.requests.storage: '
                      "Forbidden: field can not be less than status.capacity", causes=[{
                          "reason": "FieldValueForbidden", "field": "spec.resources.requests.storage",
                          "message": "Forbidden: field can not be less than status.capacity"}])
    storage_class = cluster.objects.get(("storage.k8s.io/v1", "StorageClass", None, live_class or ""))
    if parse_quantity(want) > parse_quantity(has) and not (storage_class or {}).get("allowVolumeExpansion"):
        raise refusal(403, subject, f'persistentvolumeclaims "{name}" is forbidden: only dynamically provisioned pvc '
                      "can be resized and the storageclass that provisions the pvc must support resize")


def quota(namespace, *, name="q", **hard):
    """An admission hook playing a ResourceQuota on object counts (`persistentvolumeclaims=1`): like the real one, a
    dry run is checked against what exists now and consumes nothing, so two new claims pass one at a time."""
    def admit(cluster, obj, live):
        plural = _plural(obj)
        if live is not None or obj["metadata"].get("namespace") != namespace or plural not in hard:
            return
        used = sum(1 for k in cluster.objects if k[2] == namespace and KINDS.get(k[:2], ("",))[0] == plural)
        if used + 1 > int(hard[plural]):
            raise refusal(403, describe(obj["kind"], obj["metadata"]["name"], namespace),
                          f'{plural} "{obj["metadata"]["name"]}" is forbidden: exceeded quota: {name}, requested: '
                          f"{plural}=1, used: {plural}={used}, limited: {plural}={hard[plural]}",
                          details={"name": obj["metadata"]["name"], "kind": plural})
    return admit
