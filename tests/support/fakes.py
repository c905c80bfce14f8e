"""An in-memory stand-in for meshreg.cluster.client.Cluster, with the API server's semantics where meshreg relies on
them.

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
import time

from kubernetes.utils.quantity import parse_quantity

from meshreg.cluster.api import Snapshot
from meshreg.cluster.client import KINDS, describe
from meshreg.cluster.errors import translate
from meshreg.errors import ClusterError

ISTIO_GROUPS = {
    "security.istio.io/v1": {"authorizationpolicies", "peerauthentications", "requestauthentications"},
    "networking.istio.io/v1": {"gateways", "virtualservices", "destinationrules", "serviceentries"},
    "telemetry.istio.io/v1": {"telemetries"},
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
        # SelfSubjectRulesReview: namespace -> resourceRules; a namespace not here answers "incomplete" with no
        # rules, as a webhook authorizer does, so every question falls back to `allowed`
        self.rules: dict = {}
        self.pod_logs: dict = {}  # (namespace, pod) -> the current log of its one container
        self.warn_on: dict = {}  # kind -> Warning header texts the server returns when one is applied
        self.summaries: dict[str, dict] = {}  # node -> the kubelet's stats summary
        self.admission = [_pvc_resize]  # callables(cluster, obj, live) run on every apply, dry run or not
        self.warnings: list[str] = []  # as Cluster.warnings: "<object>: <text>" for every Warning header seen
        self._lock = threading.RLock()  # meshreg sends requests from several threads
        self._changes = threading.Condition(self._lock)  # watches wait on it for the next change
        self._rv = itertools.count(1000)
        # Every change as a watch sees it, oldest first: (resourceVersion, ADDED|MODIFIED|DELETED, the object).
        self.history: list[tuple[int, str, dict]] = []
        self.compacted = 0  # a watch from a resourceVersion below this gets ERROR 410 Gone (see compact())
        self.bookmark_every: float | None = None  # seconds a watch is idle before the server sends a BOOKMARK
        self.watches: list[_Watch] = []  # every watch opened
        self.ahead = 0.0  # seconds the server's clock (its Date, the stamps of its applies) runs ahead of this one
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

    def server_time(self):
        return float(int(time.time() + self.ahead))

    def later(self, seconds):
        """Move the server's clock on by `seconds` (what was applied until now is that much older)."""
        self.ahead += seconds

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
            return self._list(api_version, kind, namespace=namespace, label_selector=label_selector,
                              field_selector=field_selector)

    def _list(self, api_version, kind, *, namespace, label_selector, field_selector):
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

    def log(self, pod, *, namespace, container=None, previous=False, tail=None, limit_bytes=None, since_seconds=None,
            timestamps=False):
        """The kubelet's log: from `logs` or `pod_logs`; None for a pod that does not exist; a ClusterError (the
        kubelet cannot be reached) for one whose log the test did not set. A test that asks with `timestamps` or
        `since_seconds` stores the lines the kubelet would send (each after its RFC 3339 time) and gets them as stored:
        the request records what was asked."""
        self.requests.append(("log", (namespace, pod, container), {"previous": previous, **(
            {"timestamps": timestamps, "since_seconds": since_seconds} if timestamps or since_seconds else {})}))
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
        if obj["kind"] == "SelfSubjectRulesReview":
            namespace = obj["spec"]["namespace"]
            self.requests.append(("create", ("authorization.k8s.io/v1", obj["kind"], None, None), obj["spec"]))
            self._maybe_fail("create", obj["kind"], namespace)
            rules = self.rules.get(namespace)
            return {**obj, "status": {"resourceRules": copy.deepcopy(rules or []), "incomplete": rules is None}}
        key = self._key_of(obj)
        self.requests.append(("create", key, {"manager": field_manager}))
        self._maybe_fail("create", obj["kind"], obj["metadata"]["name"])
        self._validate(obj, key, self.objects.get(key))
        if key in self.objects:
            raise refusal(409, f"creating {describe(key[1], key[3], key[2])}",
                          f'{KINDS[key[:2]][0]} "{key[3]}" already exists', reason="AlreadyExists")
        obj = copy.deepcopy(obj)
        obj["metadata"]["uid"] = f"uid-{next(self._rv)}"
        created = self.put(obj)
        for hook in self.on_create:
            hook(self, created)
        return copy.deepcopy(self.objects[key])

    def node_summary(self, node):
        self.requests.append(("summary", node, {}))
        self._maybe_fail("get", "NodeSummary", node)
        return copy.deepcopy(self.summaries.get(node, {}))

    # --- writes
    def apply(self, obj, *, dry_run=False, force=False, field_manager="meshreg"):
        with self._lock:
            return self._apply(obj, dry_run=dry_run, force=force, field_manager=field_manager)

    def _apply(self, obj, *, dry_run, force, field_manager):
        key = self._key_of(obj)
        self.requests.append(("apply", key, {"dry_run": dry_run, "force": force, "manager": field_manager}))
        self._maybe_fail("patch", obj["kind"], obj["metadata"]["name"])
        live = self.objects.get(key)
        if obj["metadata"].get("managedFields") is not None:  # as the API server answers an apply patch that has them
            raise refusal(400, describe(key[1], key[3], key[2]), "metadata.managedFields must be nil",
                          reason="BadRequest")
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
        found = self.warn_on.get(obj["kind"], [])
        self.warnings += [f"{describe(key[1], key[3], key[2])}: {w}" for w in found]
        result = self._finish(live, merged)
        if result is not live:  # the manager's entry says when it last changed the object, as the server's does
            self._stamp(result, field_manager)
        if not dry_run and result is not live:
            self.objects[key], self.owners[key] = result, owners
            self.record("MODIFIED" if live else "ADDED", result)
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
            gone = self.remove(key)
            if kind == "Namespace":  # the namespace controller deletes its contents
                for k in [k for k in self.objects if k[2] == name]:
                    self.remove(k)
            self._collect(gone["metadata"].get("uid"))
        return True

    def _collect(self, uid):
        """The garbage collector: dependents (ownerReferences) of a deleted object go too, and theirs."""
        if not uid:
            return
        for k, obj in list(self.objects.items()):
            if k in self.objects and any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or []):
                self.remove(k)
                self._collect(obj["metadata"].get("uid"))

    # --- test helpers (not part of Cluster)
    def put(self, obj):
        """Store an object as-is (as a controller or another client would), bumping resourceVersion."""
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        key = self._key_of(obj)
        with self._lock:
            existed = key in self.objects
            self.objects[key] = obj
            self.record("MODIFIED" if existed else "ADDED", obj)
        return obj

    def changed(self, key):
        """A controller wrote objects[key] in place: a new resourceVersion, and the MODIFIED event watches see."""
        with self._lock:
            obj = self.objects[key]
            obj["metadata"]["resourceVersion"] = str(next(self._rv))
            self.record("MODIFIED", obj)

    def remove(self, key):
        """Delete objects[key] as the server does: gone, and a DELETED event (at a new resourceVersion)."""
        with self._lock:
            gone = self.objects.pop(key)
            last = copy.deepcopy(gone)
            last["metadata"]["resourceVersion"] = str(next(self._rv))
            self.record("DELETED", last)
            return gone

    def record(self, kind, obj):
        with self._changes:
            self.history.append((int(obj["metadata"]["resourceVersion"]), kind, copy.deepcopy(obj)))
            self._changes.notify_all()

    @property
    def revision(self) -> str:
        """The cluster's resourceVersion now (what a list returns)."""
        with self._lock:
            return str(self.history[-1][0]) if self.history else "1"

    def compact(self):
        """Forget the history so far, as etcd compaction does: older resourceVersions can no longer be watched."""
        with self._lock:
            self.compacted = int(self.revision)

    # --- watching
    def snapshot(self, api_version, kind, *, namespace=None, label_selector=None, field_selector=None):
        with self._lock:
            return Snapshot(self._list(api_version, kind, namespace=namespace, label_selector=label_selector,
                                       field_selector=field_selector), self.revision)

    def watch(self, api_version, kind, *, namespace=None, label_selector=None, field_selector=None,
              resource_version, timeout_seconds):
        with self._lock:
            self.requests.append(("watch", (api_version, kind, namespace), {
                "labelSelector": label_selector, "fieldSelector": field_selector,
                "resourceVersion": resource_version, "timeoutSeconds": timeout_seconds}))
            self._maybe_fail("watch", kind, "")
            stream = _Watch(self, (api_version, kind, namespace, label_selector, field_selector),
                            int(resource_version), timeout_seconds)
            self.watches.append(stream)
            return stream

    def _stamp(self, obj, manager):
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + self.ahead))
        entries = [e for e in obj["metadata"].get("managedFields") or []
                   if not (e["manager"] == manager and e["operation"] == "Apply")]
        obj["metadata"]["managedFields"] = [*entries, {"manager": manager, "operation": "Apply",
                                                       "apiVersion": obj["apiVersion"], "time": when}]

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


class _Watch:
    """A watch on the fake: the recorded changes after its resourceVersion that match, then the ones to come, until
    `timeout_seconds` (real time) pass or it is closed; BOOKMARKs when the cluster's bookmark_every says so; ERROR 410
    Gone from a compacted resourceVersion."""

    def __init__(self, cluster, what, version, timeout_seconds):
        self.cluster, self.what, self.version = cluster, what, version
        self.deadline = time.monotonic() + timeout_seconds
        self.closed = False
        self.sent: list[dict] = []

    def close(self):
        with self.cluster._changes:
            self.closed = True
            self.cluster._changes.notify_all()

    def __iter__(self):
        if self.version < self.cluster.compacted:
            yield self._sent({"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Expired",
                "code": 410, "message": f"too old resource version: {self.version} ({self.cluster.compacted})"}})
            return
        while True:
            batch, bookmark = self._next()
            if batch is None:
                return
            for event in batch:
                yield self._sent(event)
            if bookmark:
                yield self._sent({"type": "BOOKMARK", "object": {
                    "kind": self.what[1], "apiVersion": self.what[0],
                    "metadata": {"resourceVersion": self.cluster.revision}}})

    def _next(self):
        """The matching changes not sent yet (None: the watch is over), and whether a BOOKMARK is due."""
        changes = self.cluster._changes
        with changes:
            idle_until = time.monotonic() + (self.cluster.bookmark_every or 1e9)
            while not self.closed and time.monotonic() < min(self.deadline, idle_until) and \
                    not [c for c in self.cluster.history if c[0] > self.version]:
                changes.wait(min(self.deadline, idle_until) - time.monotonic())
            if self.closed or time.monotonic() >= self.deadline:
                return None, False
            new = [c for c in self.cluster.history if c[0] > self.version]
            if new:
                self.version = new[-1][0]
            return [{"type": kind, "object": copy.deepcopy(obj)} for _, kind, obj in new if self._matches(obj)], \
                not new

    def _matches(self, obj):
        api_version, kind, namespace, labels, fields = self.what
        wanted = dict(p.split("=", 1) for p in labels.split(",")) if labels else {}
        have = obj["metadata"].get("labels") or {}
        return (obj["apiVersion"], obj["kind"]) == (api_version, kind) and \
            namespace in (None, obj["metadata"].get("namespace")) and \
            all(have.get(a) == b for a, b in wanted.items()) and _fields_match(obj, fields)

    def _sent(self, event):
        self.sent.append(event)
        return event


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
    """Play the Deployment and DaemonSet controllers: every rollout completes at once on `nodes` nodes, with Running
    pods made from the template, injected by Istio's sidecar injector unless `cluster.inject` is False."""
    if obj["kind"] not in ("Deployment", "DaemonSet"):
        return
    live = cluster.objects[cluster._key_of(obj)]
    gen = live["metadata"].get("generation", 1)
    if obj["kind"] == "Deployment":
        n = live["spec"].get("replicas", 1)
        live["status"] = {"observedGeneration": gen, "replicas": n, "updatedReplicas": n, "readyReplicas": n,
                          "availableReplicas": n}
    else:
        n = getattr(cluster, "nodes", 2)
        live["status"] = {"observedGeneration": gen, "desiredNumberScheduled": n, "currentNumberScheduled": n,
                          "updatedNumberScheduled": n, "numberReady": n, "numberAvailable": n}
    cluster.changed(cluster._key_of(obj))  # a status write is a write
    _replace_pods(cluster, live, n)


def _replace_pods(cluster, workload, n):
    namespace, name = workload["metadata"]["namespace"], workload["metadata"]["name"]
    selector = workload["spec"]["selector"]["matchLabels"].items()
    for key in [k for k, pod in cluster.objects.items() if k[1] == "Pod" and k[2] == namespace
                and selector <= (pod["metadata"].get("labels") or {}).items()]:
        cluster.remove(key)
    template = workload["spec"]["template"]
    labels = dict(template["metadata"].get("labels") or {})
    injected = getattr(cluster, "inject", True) and labels.get("sidecar.istio.io/inject") != "false"
    ns_labels = (cluster.objects.get(("v1", "Namespace", None, namespace)) or {}).get("metadata", {}).get(
        "labels") or {}
    ztunnel = any(k[1] == "DaemonSet" and ((o["spec"].get("template") or {}).get("metadata") or {}).get(
        "labels", {}).get("app") == "ztunnel" for k, o in cluster.objects.items())
    # istio-cni hands a pod without a sidecar in an ambient namespace to ztunnel, and says so on the pod
    captured = not injected and ztunnel and ns_labels.get("istio.io/dataplane-mode") == "ambient"
    for i in range(n):
        spec = copy.deepcopy(template["spec"])
        if injected:
            _inject(spec, template["metadata"])
        cluster.put({"apiVersion": "v1", "kind": "Pod", "status": {"phase": "Running"}, "spec": spec, "metadata": {
            "name": f"{name}-{workload['metadata'].get('generation', 1)}-{i}", "namespace": namespace,
            "labels": labels, "ownerReferences": [{"apiVersion": workload["apiVersion"], "kind": workload["kind"],
                                                   "name": name, "uid": workload["metadata"].get("uid")}],
            **({"annotations": {"ambient.istio.io/redirection": "enabled"}} if captured else {})}})


def _inject(spec, meta):
    """What Istio's injector does to a pod (not one labelled sidecar.istio.io/inject=false): a gateway's
    `image: auto` filled in, else an istio-proxy sidecar."""
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


def route(monkeypatch, cluster: FakeCluster) -> FakeCluster:
    """Make every `connect` return `cluster`, so the CLI's commands talk to it."""
    import meshreg.cluster.client

    monkeypatch.setattr(meshreg.cluster.client, "connect", lambda **kw: cluster)
    return cluster


def connected(monkeypatch) -> FakeCluster:
    """A FakeCluster with Istio's injector whose rollouts complete at once, returned by every `connect` (so the CLI's
    commands talk to it)."""
    cluster = FakeCluster()
    cluster.put(INJECTOR)
    cluster.on_apply.append(ready_controller)
    return route(monkeypatch, cluster)


def registry_pod(cluster: FakeCluster, *, spec: dict, status: dict | None = None) -> dict:
    """A pod as the ReplicaSet controller would create it from the live registry Deployment's template."""
    template = cluster.get("apps/v1", "Deployment", "registry", namespace="meshreg")["spec"]["template"]
    return cluster.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "registry-abc", "namespace": "meshreg", "labels": template["metadata"]["labels"]},
        "spec": spec, "status": status or {}})


def writes(cluster: FakeCluster) -> list:
    """The requests that changed something (applies and deletes that were not dry runs)."""
    return [r for r in cluster.requests if r[0] in ("apply", "delete") and not r[2].get("dry_run")]
