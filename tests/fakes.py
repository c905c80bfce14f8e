"""An in-memory stand-in for meshreg.cluster.client.Cluster with the API server's semantics where meshreg relies on them.

resourceVersion bumps only on a real change; get/delete of a missing object is None/False (404); server-side apply
tracks which field manager owns which leaf field and raises ConflictError (409) when another manager owns a field
whose value would change, unless force; dry-run computes the result without persisting; names are validated (422).
"""

from __future__ import annotations

import copy
import itertools
import re

from meshreg.cluster.client import KINDS, ConflictError
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
CRD_GROUPS = ("istio.io", "gateway.networking.k8s.io")  # groups that exist only where their CRDs are installed
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# istiod for the default revision and its mesh config, as istioctl installs them (with Istio's CRDs).
ISTIOD = {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "istiod", "namespace": "istio-system",
                       "labels": {"app": "istiod", "istio.io/rev": "default"}},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "istiod"}}, "template": {
              "metadata": {"labels": {"app": "istiod"}},
              "spec": {"containers": [{"name": "discovery", "image": "docker.io/istio/pilot:1.30.3"}]}}},
          "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}}
# A default StorageClass, as kind, k3s and managed clusters have one.
STANDARD = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}
MESH = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "istio", "namespace": "istio-system"},
        "data": {"mesh": "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n"
                         "rootNamespace: istio-system\ntrustDomain: cluster.local\n"}}


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
        # (namespace, pod, container[, previous]) -> the log text the kubelet keeps
        self.logs: dict[tuple, str] = {}
        self.on_create = []  # callables(cluster, obj) run after a create: play a controller
        self.allowed = lambda attributes: True  # SelfSubjectAccessReview: resourceAttributes -> allowed
        self.pod_logs: dict = {}  # (namespace, pod) -> the current log of its one container
        self.warnings: dict = {}  # kind -> Warning header texts the server returns when it is applied
        self.summaries: dict[str, dict] = {}  # node -> the kubelet's stats summary
        self._rv = itertools.count(1000)
        for ns in ("default", "kube-system", "kube-public", "istio-system"):  # what every cluster has
            self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        self.put(STANDARD)
        if "security.istio.io/v1" in self.served_groups:  # a cluster with Istio: its control plane too
            self.put(ISTIOD)
            self.put(MESH)

    # --- reads
    def version(self) -> dict:
        self._maybe_fail("get", "version", "")
        return {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}

    def served(self, api_version):
        return set(self.served_groups.get(api_version, set()))

    def get(self, api_version, kind, name, *, namespace=None):
        self.requests.append(("get", (api_version, kind, namespace, name), {}))
        self._maybe_fail("get", kind, name)
        obj = self.objects.get(self._key(api_version, kind, namespace, name))
        return copy.deepcopy(obj)

    def list(self, api_version, kind, *, namespace=None, label_selector=None, field_selector=None):
        self.requests.append(("list", (api_version, kind, namespace), {"labelSelector": label_selector,
                                                                       "fieldSelector": field_selector}))
        self._maybe_fail("list", kind, "")
        if api_version.partition("/")[0].endswith(CRD_GROUPS) and KINDS[(api_version, kind)][0] not in \
                self.served(api_version):  # the server answers 404 for a resource no CRD serves
            raise ClusterError(f"list {KINDS[(api_version, kind)][0]} failed: the server could not find the "
                               "requested resource")
        wanted = dict(p.split("=", 1) for p in label_selector.split(",")) if label_selector else {}
        out = []
        for (av, k, ns, _), obj in sorted(self.objects.items(), key=lambda i: str(i[0])):
            labels = obj["metadata"].get("labels") or {}
            if (av, k) == (api_version, kind) and (namespace is None or ns == namespace) \
                    and all(labels.get(a) == b for a, b in wanted.items()) and _fields_match(obj, field_selector):
                out.append(copy.deepcopy(obj))
        return out

    def log(self, pod, *, namespace, container=None, previous=False, tail=None, limit_bytes=None):
        """The kubelet's log: from `logs` or `pod_logs`; None for a pod that does not exist; a ClusterError (the
        kubelet cannot be reached) for one whose log the test did not set."""
        self.requests.append(("log", (namespace, pod, container), {"previous": previous}))
        self._maybe_fail("get", "pods/log", pod)
        text = self.logs.get((namespace, pod, container, previous))
        if text is None and not previous:
            text = self.logs.get((namespace, pod, container), self.pod_logs.get((namespace, pod)))
        if text is None:
            if ("v1", "Pod", namespace, pod) not in self.objects:
                return None
            raise ClusterError(f'get pods/log in namespace {namespace} failed: Get "https://10.0.0.1:10250/'
                               f'containerLogs/{namespace}/{pod}/{container}": dial tcp 10.0.0.1:10250: connect: '
                               "connection refused")
        lines = text.splitlines(keepends=True)
        text = "".join(lines[-tail:]) if tail else text
        return text[:limit_bytes] if limit_bytes else text

    def create(self, obj, *, field_manager="meshreg"):
        if obj["kind"] == "SelfSubjectAccessReview":
            self.requests.append(("create", ("authorization.k8s.io/v1", obj["kind"], None, None), obj["spec"]))
            self._maybe_fail("create", obj["kind"], "")
            return {**obj, "status": {"allowed": bool(self.allowed(obj["spec"]["resourceAttributes"]))}}
        key = self._key_of(obj)
        self.requests.append(("create", key, {"manager": field_manager}))
        self._maybe_fail("create", obj["kind"], obj["metadata"]["name"])
        self._validate(obj, key)
        if key in self.objects:
            raise ClusterError(f'conflict: {KINDS[key[:2]][0]} "{key[3]}" already exists')
        obj = copy.deepcopy(obj)
        obj["metadata"]["uid"] = f"uid-{next(self._rv)}"
        created = self.put(obj)
        for hook in self.on_create:
            hook(self, created)
        return copy.deepcopy(self.objects[key])

    def node_summary(self, node):
        self.requests.append(("summary", node, {}))
        return copy.deepcopy(self.summaries.get(node))

    # --- writes
    def apply(self, obj, *, dry_run=False, force=False, field_manager="meshreg", warnings=None):
        key = self._key_of(obj)
        self.requests.append(("apply", key, {"dry_run": dry_run, "force": force, "manager": field_manager}))
        self._maybe_fail("patch", obj["kind"], obj["metadata"]["name"])
        self._validate(obj, key)
        live = self.objects.get(key)
        owners = dict(self.owners.get(key, {}))
        merged = copy.deepcopy(live) if live else {}
        applied = [(p, v) for p, v in _leaves(obj) if p not in _SERVER_OWNED]
        self._check_conflicts(live, owners, applied, field_manager=field_manager, force=force)
        for path, manager in list(owners.items()):  # fields this manager stopped applying are removed
            if manager == field_manager and path not in dict(applied):
                _remove(merged, path)
                del owners[path]
        for path, value in applied:
            _assign(merged, path, value)
            owners[path] = field_manager
        if warnings is not None:
            warnings += self.warnings.get(obj["kind"], [])
        result = self._finish(live, merged)
        if not dry_run and result is not live:
            self.objects[key], self.owners[key] = result, owners
            for hook in self.on_apply:
                hook(self, result)
        return copy.deepcopy(result if result is not None else live)

    def delete(self, api_version, kind, name, *, namespace=None, propagation="Background", dry_run=False):
        key = self._key(api_version, kind, namespace, name)
        self.requests.append(("delete", key, {"propagation": propagation, "dry_run": dry_run}))
        self._maybe_fail("delete", kind, name)
        if key not in self.objects:
            return False
        if not dry_run:
            gone = self.objects.pop(key)
            if kind == "Namespace":  # the namespace controller deletes its contents
                for k in [k for k in self.objects if k[2] == name]:
                    del self.objects[k]
            self._collect(gone["metadata"].get("uid"))
        return True

    def _collect(self, uid):
        """The garbage collector: dependents (ownerReferences) of a deleted object go too, and theirs."""
        if not uid:
            return
        for k, obj in list(self.objects.items()):
            if k in self.objects and any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or []):
                del self.objects[k]
                self._collect(obj["metadata"].get("uid"))

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

    def _check_conflicts(self, live, owners, applied, *, field_manager, force):
        if live is None or force:
            return
        clashes = [(p, owners[p]) for p, v in applied
                   if p in owners and owners[p] != field_manager and _lookup(live, p) != v]
        if clashes:
            managers = sorted({m for _, m in clashes})
            fields = ", ".join("." + ".".join(p) for p, _ in clashes)
            raise ConflictError(f"conflict: fields {fields} are owned by {', '.join(managers)}; "
                                "rerun with --force-conflicts to take them over", managers)

    def _validate(self, obj, key):
        name = obj["metadata"].get("name", "")
        if not NAME.match(name) or len(name) > 253:
            raise ClusterError(f'invalid: {obj["kind"]} "{name}" is invalid: metadata.name: Invalid value')
        if key[2] and ("v1", "Namespace", None, key[2]) not in self.objects:
            raise ClusterError(f'patch {obj["kind"]} failed: namespaces "{key[2]}" not found')

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


def _fields_match(obj, selector) -> bool:
    """A field selector (`a.b=c`, `a.b!=c`, comma-separated, all must hold) on an object's dotted fields."""
    for term in (selector or "").split(","):
        if not term:
            continue
        negate = "!=" in term
        path, _, want = term.partition("!=" if negate else "=")
        value = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if (str(value if value is not None else "") == want) == negate:
            return False
    return True


def ready_controller(cluster, obj):
    """Play the Deployment and DaemonSet controllers: every rollout completes at once on `nodes` nodes."""
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


def connected(monkeypatch) -> FakeCluster:
    """A FakeCluster with Istio's injector whose rollouts complete at once, returned by every `connect` (so the CLI's
    commands talk to it)."""
    import meshreg.cluster.client

    cluster = FakeCluster()
    cluster.put(INJECTOR)
    cluster.on_apply.append(ready_controller)
    monkeypatch.setattr(meshreg.cluster.client, "connect", lambda **kw: cluster)
    return cluster
