"""The one place meshreg talks to a Kubernetes API server: connect, get, list, apply, delete.

Requests go through the official client's `ApiClient.call_api` with paths built from a small table of the kinds
meshreg touches, rather than through `kubernetes.dynamic`: the set of kinds is fixed and known, so discovery would
only add round trips (and a cache on disk) before the first useful request, and calling the client directly keeps
the wire format (content type, `fieldManager`, `force`, `dryRun`) exactly what the code says.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from meshreg.cluster import discovery, parallel, streams
from meshreg.cluster.api import Object, Snapshot, WatchStream
from meshreg.cluster.errors import ConflictError, translate, warning_texts
from meshreg.errors import ClusterError, UsageError

__all__ = ["KINDS", "Cluster", "ConflictError", "connect", "object_path", "resource_name"]

FIELD_MANAGER = "meshreg"
APPLY_PATCH = "application/apply-patch+yaml"
TIMEOUT = (10, 60)  # (connect, read) seconds for every request
WATCH_GRACE = 30  # seconds a watch may stay silent past its timeoutSeconds before the read gives up

# (apiVersion, kind) -> (plural, namespaced)
KINDS = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "Node"): ("nodes", False),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("v1", "Service"): ("services", True),
    ("v1", "Pod"): ("pods", True),
    ("v1", "Event"): ("events", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("security.istio.io/v1", "PeerAuthentication"): ("peerauthentications", True),
    ("security.istio.io/v1", "AuthorizationPolicy"): ("authorizationpolicies", True),
    ("security.istio.io/v1", "RequestAuthentication"): ("requestauthentications", True),
    ("networking.istio.io/v1", "Gateway"): ("gateways", True),
    ("networking.istio.io/v1", "VirtualService"): ("virtualservices", True),
    ("networking.istio.io/v1", "ServiceEntry"): ("serviceentries", True),
    ("networking.istio.io/v1", "DestinationRule"): ("destinationrules", True),
    ("telemetry.istio.io/v1", "Telemetry"): ("telemetries", True),
    ("gateway.networking.k8s.io/v1", "Gateway"): ("gateways", True),
    ("gateway.networking.k8s.io/v1", "GatewayClass"): ("gatewayclasses", False),
    ("discovery.k8s.io/v1", "EndpointSlice"): ("endpointslices", True),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): ("mutatingwebhookconfigurations", False),
    # doctor, verify, gc, push proxy, ingress
    ("v1", "PersistentVolume"): ("persistentvolumes", False),
    ("batch/v1", "Job"): ("jobs", True),
    ("batch/v1", "CronJob"): ("cronjobs", True),
    ("policy/v1", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    ("storage.k8s.io/v1", "StorageClass"): ("storageclasses", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): ("selfsubjectaccessreviews", False),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): ("selfsubjectrulesreviews", False),
}


def resource_name(api_version: str, kind: str) -> str:
    """`deployments.apps`, `configmaps`: how RBAC and kubectl name a resource."""
    plural = _kind(api_version, kind)[0]
    group = api_version.rpartition("/")[0]
    return f"{plural}.{group}" if group else plural


def _kind(api_version: str, kind: str) -> tuple[str, bool]:
    try:
        return KINDS[(api_version, kind)]
    except KeyError:
        raise ClusterError(f"meshreg does not handle {kind} ({api_version})") from None


def object_path(api_version: str, kind: str, *, namespace: str | None = None, name: str | None = None) -> str:
    """The REST path of a collection (name None) or of one object."""
    plural, namespaced = _kind(api_version, kind)
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    ns = f"/namespaces/{quote(namespace)}" if namespaced and namespace else ""
    tail = f"/{quote(name)}" if name else ""
    return f"{prefix}{ns}/{plural}{tail}"


def describe(kind: str, name: str, namespace: str | None = None) -> str:
    """`Deployment meshreg/registry`, `Namespace meshreg`: how meshreg names an object in every message."""
    return f"{kind} {namespace + '/' if namespace else ''}{name}"


class Cluster:
    """A connection to one API server; every method raises ClusterError (one line), never a client exception.
    Safe to call from several threads at once. Warnings the server sends (Pod Security, deprecations) are kept in
    `warnings`, each prefixed with the object it is about."""

    def __init__(self, api_client: Any, *, server: str, cache: discovery.Cache | None = None) -> None:
        self.api_client = api_client
        self.server = server
        self.warnings: list[str] = []
        self._served: dict[str, set[str]] = {}
        self._cache = cache  # discovery answers on disk, shared with kubectl (None: ask every time)
        self._clock: float | None = None  # the latest Date header received (the server's clock, whole seconds)

    def server_time(self) -> float | None:
        """The server's clock (its Date header, POSIX seconds) at the latest answer received; None before any."""
        return self._clock

    def version(self) -> dict:
        """GET /version: proves the server answers and the credentials work."""
        return self._call("GET", "/version", subject="reading the server version")

    def served(self, api_version: str) -> set[str]:
        """Resource names the server serves in a group version (empty when the group is not installed); read once,
        as discovery does not change while a command runs."""
        if api_version not in self._served:
            body = self._cache.load(api_version) if self._cache else None
            if body is None:
                path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
                body = self._call("GET", path, subject=f"reading API group {api_version}", missing_ok=True)
                if body and self._cache:
                    self._cache.store(api_version, body)
            self._served[api_version] = {r["name"] for r in (body or {}).get("resources", [])
                                         if "/" not in r.get("name", "")}
        return set(self._served[api_version])

    def get(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> dict | None:
        """The live object, or None when it does not exist."""
        path = object_path(api_version, kind, namespace=namespace, name=name)
        return self._call("GET", path, subject=f"reading {describe(kind, name, namespace)}", missing_ok=True)

    def list(self, api_version: str, kind: str, *, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict]:
        """Objects of a kind in a namespace (or cluster-wide), optionally filtered by selectors."""
        return self.snapshot(api_version, kind, namespace=namespace, label_selector=label_selector,
                             field_selector=field_selector).items

    def snapshot(self, api_version: str, kind: str, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None) -> Snapshot:
        """Like `list`, with the resourceVersion of the list, from which a watch goes on."""
        query = [(k, v) for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v]
        path = object_path(api_version, kind, namespace=namespace)
        where = f" in namespace {namespace}" if namespace else ""
        body = self._call("GET", path, query=query, subject=f"listing {resource_name(api_version, kind)}{where}")
        items = body.get("items") or []
        for item in items:  # list items carry neither apiVersion nor kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return Snapshot(items=items, resource_version=str((body.get("metadata") or {}).get("resourceVersion", "")))

    def watch(self, api_version: str, kind: str, *, namespace: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, resource_version: str, timeout_seconds: int) -> WatchStream:
        """The changes after `resource_version`, with bookmarks, until the server ends the watch after
        `timeout_seconds`; ClusterError (with the code) when the server refuses it."""
        query = [("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]
        query += [(k, v) for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v]
        where = f" in namespace {namespace}" if namespace else ""
        subject = f"watching {resource_name(api_version, kind)}{where}"
        headers = {"Accept": "application/json"}
        try:
            _, url, headers, _, _ = self.api_client.param_serialize(
                method="GET", resource_path=object_path(api_version, kind, namespace=namespace), query_params=query,
                header_params=headers, auth_settings=["BearerToken"])
            response = self.api_client.call_api("GET", url, header_params=headers,
                                                _request_timeout=(TIMEOUT[0], timeout_seconds + WATCH_GRACE))
        except Exception as e:  # as in _exchange: could not talk to the server
            raise ClusterError(f"cannot reach the Kubernetes API server at {self.server}: {_reason(e)}") from e
        if response.status != 200:
            raise translate(response.status, _json(response.read() or b""), subject=subject)
        return streams.Watch(response.response, subject=subject)

    def apply(self, obj: dict, *, dry_run: bool = False, force: bool = False,
              field_manager: str = FIELD_MANAGER) -> dict:
        """Server-side apply of `obj`; returns the object as the server now has it (or would, with dry_run)."""
        meta = obj["metadata"]
        api_version, kind = obj["apiVersion"], obj["kind"]
        path = object_path(api_version, kind, namespace=meta.get("namespace"), name=meta["name"])
        query = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        return self._call("PATCH", path, query=query, body=obj, content_type=APPLY_PATCH,
                          subject=describe(kind, meta["name"], meta.get("namespace")))

    def create(self, obj: dict, *, field_manager: str = FIELD_MANAGER) -> dict:
        """POST a new object (or a review such as SelfSubjectAccessReview); returns what the server answered."""
        meta = obj.get("metadata") or {}
        api_version, kind = obj["apiVersion"], obj["kind"]
        path = object_path(api_version, kind, namespace=meta.get("namespace"))
        return self._call("POST", path, query=[("fieldManager", field_manager)], body=obj,
                          content_type="application/json",
                          subject=f"creating {describe(kind, meta.get('name') or kind, meta.get('namespace'))}")

    def delete(self, api_version: str, kind: str, name: str, *, namespace: str | None = None,
               propagation: str = "Background", dry_run: bool = False) -> bool:
        """Delete an object; False when it was already gone (404 is success here)."""
        path = object_path(api_version, kind, namespace=namespace, name=name)
        body: Object = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if dry_run:  # in the body: with a body, the API server reads DeleteOptions from it and ignores the query
            body["dryRun"] = ["All"]
        gone = self._call("DELETE", path, body=body, content_type="application/json",
                          subject=f"deleting {describe(kind, name, namespace)}", missing_ok=True)
        return gone is not None

    def log(self, pod: str, *, namespace: str, container: str | None = None, previous: bool = False,
            tail: int | None = None, limit_bytes: int | None = None, since_seconds: int | None = None,
            timestamps: bool = False) -> str | None:
        """What a container wrote (of its previous run with `previous`; the last `tail` lines, at most `limit_bytes`
        bytes, the last `since_seconds`; each line after the kubelet's RFC 3339 time with `timestamps`); None when
        the pod is gone."""
        path = object_path("v1", "Pod", namespace=namespace, name=pod) + "/log"
        query = [(k, str(v)) for k, v in (("container", container), ("tailLines", tail), ("limitBytes", limit_bytes),
                                          ("sinceSeconds", since_seconds)) if v is not None]
        query += [(k, "true") for k, on in (("previous", previous), ("timestamps", timestamps)) if on]
        # The log is plain text, but the API server answers `Accept: text/plain` with 406: ask for anything.
        status, raw, _ = self._exchange("GET", path, query=query, body=None, content_type=None, accept="*/*")
        if status == 404:  # the pod is gone (400 names what is missing: a container not started, no previous run)
            return None
        if status >= 300:
            raise translate(status, _json(raw), subject=f"reading the log of {describe('Pod', pod, namespace)}")
        return raw.decode("utf-8", "replace")

    def node_summary(self, node: str) -> Object:
        """The kubelet's stats summary through the API server's node proxy (volume usage); ClusterError with the
        API's reason (RBAC on nodes/proxy, an unreachable kubelet, ...) when it cannot be read."""
        path = object_path("v1", "Node", name=node) + "/proxy/stats/summary"
        subject = f"reading the kubelet's stats of node {node}"
        status, raw, _ = self._exchange("GET", path, query=[], body=None, content_type=None)
        if status != 200:
            raise translate(status, _json(raw), subject=subject)
        try:
            found = json.loads(raw)
        except ValueError as e:
            raise ClusterError(f"{subject}: the answer is not JSON") from e
        if not isinstance(found, dict):
            raise ClusterError(f"{subject}: the answer is not a stats summary")
        return found

    def _call(self, method: str, path: str, *, subject: str, query: Iterable[tuple[str, str]] = (),
              body: Object | None = None, content_type: str | None = None, missing_ok: bool = False) -> Any:
        status, raw, headers = self._exchange(method, path, query=list(query), body=body, content_type=content_type)
        data = _json(raw)
        found = [text for w in (headers.getlist("Warning") if hasattr(headers, "getlist") else [])
                 for text in warning_texts(w)]
        self.warnings.extend(f"{subject}: {w}" for w in found)
        if status == 404 and missing_ok:
            return None
        if status >= 300:
            raise translate(status, data, subject=subject)
        return data

    def _exchange(self, method: str, path: str, *, query: Sequence[tuple[str, str]], body: Object | None,
                  content_type: str | None, accept: str = "application/json") -> tuple[int, bytes, Any]:
        """(status, body bytes, headers) of one request; ClusterError when the server cannot be reached."""
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            _, url, headers, _, _ = self.api_client.param_serialize(
                method=method, resource_path=path, query_params=query, header_params=headers,
                auth_settings=["BearerToken"])
            response = self.api_client.call_api(method, url, header_params=headers, body=body,
                                                _request_timeout=TIMEOUT)
            raw = response.read()
        except Exception as e:  # urllib3, ssl, auth plugins: all mean "could not talk to the server"
            raise ClusterError(f"cannot reach the Kubernetes API server at {self.server}: {_reason(e)}") from e
        self._note_clock(response.headers)
        return response.status, raw or b"", response.headers

    def _note_clock(self, headers: Any) -> None:
        try:
            when = parsedate_to_datetime(headers.get("Date")).timestamp()
        except (AttributeError, TypeError, ValueError):  # no Date header, or not a date
            return
        self._clock = max(self._clock or when, when)


def _json(raw: bytes) -> dict:
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw[:200].decode("utf-8", "replace").strip()}


def connect(*, kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """A Cluster for the kubeconfig context (or in-cluster config); fails before any request on bad input."""
    from meshreg.cluster import kubeclient, retries  # loaded with the Kubernetes client, not by --help

    client, config = kubeclient.parts()

    configuration = client.Configuration()
    files = _kubeconfig_files(kubeconfig)
    try:
        if files:
            _check_context(files, context)
            config.load_kube_config(config_file=os.pathsep.join(files), context=context,
                                    client_configuration=configuration, persist_config=False)
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            if context:
                raise UsageError(f"--context {context}: no kubeconfig found, and in-cluster config has no contexts")
            config.load_incluster_config(client_configuration=configuration)
        else:
            raise UsageError("no kubeconfig found (~/.kube/config, $KUBECONFIG) and not running in a pod; "
                             "pass --kubeconfig PATH")
    except config.ConfigException as e:
        raise UsageError(f"kubeconfig {os.pathsep.join(files) or '(in-cluster)'}: {_reason(e)}") from e
    # Enough pooled connections for the requests meshreg sends at once, so none is opened and then discarded.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 2 * parallel.WORKERS)
    configuration.retries = retries.policy()  # 429, Retry-After and dropped connections, where safe
    return Cluster(client.ApiClient(configuration), server=configuration.host,
                   cache=discovery.Cache(discovery.directory(configuration.host)))


def _kubeconfig_files(explicit: str | None) -> list[str]:
    """--kubeconfig must name readable files; $KUBECONFIG entries that do not exist are skipped, as kubectl does."""
    if explicit:
        return _readable([os.path.expanduser(p) for p in explicit.split(os.pathsep) if p])
    listed = os.environ.get("KUBECONFIG") or "~/.kube/config"
    return [p for p in (os.path.expanduser(x) for x in listed.split(os.pathsep) if x) if os.path.exists(p)]


def _readable(paths: list[str]) -> list[str]:
    for path in paths:
        try:
            open(path, "rb").close()  # readable, not merely present: root passes os.access regardless
        except OSError as e:
            raise UsageError(f"--kubeconfig {path}: cannot read: {e.strerror}") from e
    return paths


def _check_context(files: list[str], context: str | None) -> None:
    docs = [_kubeconfig(path) for path in files]
    names = [name for doc in docs for name in _context_names(doc)]
    wanted = context or next((doc["current-context"] for doc in docs if doc.get("current-context")), None)
    if not wanted:
        raise UsageError(f"kubeconfig {files[0]}: no current-context; pass --context NAME")
    if wanted not in names:
        known = ", ".join(names) or "none"
        raise UsageError(f"context {wanted!r} is not in the kubeconfig (contexts: {known})")


def _context_names(doc: dict[str, Any]) -> list[str]:
    return [c["name"] for c in doc.get("contexts") or [] if isinstance(c, dict) and c.get("name")]


def _kubeconfig(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # libyaml's, where built
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise UsageError(f"kubeconfig {path}: cannot read: {_reason(e)}") from e
    if not isinstance(doc, dict):
        raise UsageError(f"kubeconfig {path}: not a kubeconfig (expected a mapping)")
    return doc


def _reason(e: BaseException) -> str:
    """The innermost useful line of a client or network exception."""
    inner = getattr(e, "reason", None)
    text = str(inner if isinstance(inner, BaseException) else e)
    text = re.sub(r"<urllib3[^>]*>:?\s*", "", text)
    return " ".join(text.split())[:300] or type(e).__name__
