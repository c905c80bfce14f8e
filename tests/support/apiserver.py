"""A tiny local API server for wire tests: the real `kubernetes` client talks to it, it records every request."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from meshreg.cluster import client as clusters

PLURALS = {plural for plural, _ in clusters.KINDS.values()}
DROP = "drop"  # a route answering DROP closes the connection without any response (a dropped connection)


class FakeApiServer(ThreadingHTTPServer):
    """Records every request; answers from `routes` {(METHOD, path): (status, body[, [(header, value)]])}, or a
    callable taking the recorded request and returning that (or DROP), else from `collections` (list and watch, as
    the API server answers them), else like an empty cluster. A str or bytes body is sent as text/plain."""

    request_queue_size = 64  # meshreg connects many times at once; a full backlog drops SYNs (1 s retries)

    def __init__(self, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.requests, self.routes = [], {}
        self.collections: dict[str, Collection] = {}  # collection path -> its objects and their changes

    def collection(self, path: str) -> Collection:
        """The objects at a collection path (e.g. /apis/apps/v1/namespaces/ns/deployments), created on first use."""
        return self.collections.setdefault(path, Collection())


class Collection:
    """Objects of one collection and every change to them, at resourceVersions, so a list says where it was read and a
    watch streams what changed after that: ADDED, MODIFIED, DELETED, a BOOKMARK when idle for `bookmark_every`
    seconds, and ERROR 410 Gone from a resourceVersion before `compacted`."""

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self.history: list[tuple[int, str, dict]] = []
        self.revision = 100
        self.compacted = 0
        self.bookmark_every: float | None = None
        self.changes = threading.Condition()

    def put(self, obj: dict) -> dict:
        with self.changes:
            self.revision += 1
            obj = json.loads(json.dumps(obj))
            obj["metadata"]["resourceVersion"] = str(self.revision)
            kind = "MODIFIED" if obj["metadata"]["name"] in self.objects else "ADDED"
            self.objects[obj["metadata"]["name"]] = obj
            self.history.append((self.revision, kind, obj))
            self.changes.notify_all()
            return obj

    def delete(self, name: str) -> None:
        with self.changes:
            self.revision += 1
            obj = self.objects.pop(name)
            obj["metadata"]["resourceVersion"] = str(self.revision)
            self.history.append((self.revision, "DELETED", obj))
            self.changes.notify_all()

    def compact(self) -> None:
        with self.changes:
            self.compacted = self.revision

    def listing(self, query: dict) -> dict:
        with self.changes:
            items = [o for o in self.objects.values() if _selected(o, query)]
            return {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.revision)},
                    "items": items}

    def events(self, query: dict, closed: threading.Event):
        """The watch's events as the server sends them, until its timeoutSeconds pass."""
        version = int((query.get("resourceVersion") or ["0"])[0] or 0)
        deadline = time.monotonic() + float((query.get("timeoutSeconds") or ["1800"])[0])
        if version < self.compacted:
            yield {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                               "status": "Failure", "reason": "Expired", "code": 410,
                                               "message": f"too old resource version: {version} ({self.compacted})"}}
            return
        bookmarks = (query.get("allowWatchBookmarks") or ["false"])[0] == "true"
        while not closed.is_set() and time.monotonic() < deadline:
            with self.changes:
                idle = self.bookmark_every if bookmarks and self.bookmark_every else 0.5
                if not self.history or self.history[-1][0] <= version:
                    self.changes.wait(timeout=min(idle, max(deadline - time.monotonic(), 0)))
                new = [c for c in self.history if c[0] > version]
                current = self.revision
            for _, kind, obj in new:
                if _selected(obj, query):
                    yield {"type": kind, "object": obj}
            if new:
                version = new[-1][0]
            elif bookmarks and self.bookmark_every and time.monotonic() < deadline:
                yield {"type": "BOOKMARK", "object": {"kind": "Bookmark", "metadata": {
                    "resourceVersion": str(current)}}}


def _selected(obj: dict, query: dict) -> bool:
    """The metadata.name field selector (the only one these tests send to a collection)."""
    selector = (query.get("fieldSelector") or [""])[0]
    return not selector.startswith("metadata.name=") or obj["metadata"]["name"] == selector.split("=", 1)[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked watch responses as the API server sends them

    def log_message(self, *args):
        pass

    def _answer(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        request = {"method": self.command, "path": url.path, "query": parse_qs(url.query),
                   "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        self.server.requests.append(request)
        route = self.server.routes.get((self.command, url.path))
        found = (route(request) if callable(route) else route) or self._collection(url.path, request)
        if found == DROP:
            self.close_connection = True
            return
        if found == "watch":
            self._watch(url.path, request["query"])
            return
        status, answer, *more = found or self._default(url.path, body)
        text = isinstance(answer, (str, bytes))  # a plain-text body (pod logs), else JSON
        data = (answer.encode() if isinstance(answer, str) else answer) if text else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (more[0] if more else []):  # extra headers, e.g. several Warning headers
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _collection(self, path, request):
        """A list or watch of a collection, or a GET of one of its objects."""
        if request["method"] != "GET":
            return None
        collection = self.server.collections.get(path)
        if collection is not None:
            return "watch" if (request["query"].get("watch") or [""])[0] in ("true", "1") else \
                (200, collection.listing(request["query"]))
        parent, _, name = path.rpartition("/")
        collection = self.server.collections.get(parent)
        return (200, collection.objects[name]) if collection is not None and name in collection.objects else None

    def _watch(self, path, query):
        """A chunked stream of watch events, one JSON line each, as the API server sends them."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        closed = threading.Event()
        try:
            for event in self.server.collections[path].events(query, closed):
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away
            closed.set()
            self.close_connection = True

    def _default(self, path, body):
        if self.command == "POST" and path.endswith("/selfsubjectaccessreviews"):
            return 201, {**json.loads(body), "status": {"allowed": True}}
        if self.command == "POST" and path.endswith("/selfsubjectrulesreviews"):  # as for a cluster admin
            return 201, {**json.loads(body), "status": {"incomplete": False, "resourceRules": [
                {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}}
        if self.command == "PATCH":  # server-side apply of a new object: the server answers with the object
            obj = json.loads(body)
            obj["metadata"]["resourceVersion"] = "1"
            return 201, obj
        if self.command == "DELETE":
            return 200, {"kind": "Status", "status": "Success"}
        if self.command == "GET" and path.rsplit("/", 1)[-1] in PLURALS:
            return 200, {"kind": "List", "items": []}
        if path == "/version":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}
        return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                     "message": f"{path} not found"}

    do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _answer


def write_kubeconfig(path, server_url, *, context="dev"):
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": server_url}}],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
    }))
    return str(path)


def only(api, method):
    found = [r for r in api.requests if r["method"] == method]
    assert len(found) == 1, found
    return found[0]


def dry_run(request) -> bool:
    """A dry run: `dryRun=All` in the query (apply), or in the DeleteOptions body (delete)."""
    if "dryRun" in request["query"]:
        return True
    try:
        return "dryRun" in json.loads(request.get("body") or "{}")
    except (ValueError, TypeError):
        return False


def writes(api) -> list:
    """Requests that change something: not reads, dry runs, or access and rules reviews (POSTs that only ask)."""
    return [r for r in api.requests if r["method"] != "GET" and not dry_run(r)
            and not r["path"].endswith(("/selfsubjectaccessreviews", "/selfsubjectrulesreviews"))]


def istio_cluster(api):
    """Routes that make the tiny server look like a cluster with Istio (CRDs, injector, istiod) and a default
    StorageClass."""
    for group, names in (("security.istio.io/v1", ["authorizationpolicies", "peerauthentications"]),
                         ("networking.istio.io/v1", ["gateways", "virtualservices"]),
                         ("telemetry.istio.io/v1", ["telemetries"])):
        api.routes[("GET", f"/apis/{group}")] = (200, {"resources": [{"name": n} for n in names]})
    api.routes[("GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations")] = (200, {"items": [
        {"metadata": {"name": "istio-sidecar-injector"}, "webhooks": [{"name": "w", "namespaceSelector": {
            "matchLabels": {"istio-injection": "enabled"}}}]}]})
    api.routes[("GET", "/apis/apps/v1/deployments")] = (200, {"items": [
        {"metadata": {"name": "istiod", "namespace": "istio-system", "labels": {"app": "istiod"}},
         "spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": "istio/pilot:1.30.3"}]}}},
         "status": {"availableReplicas": 1}}]})
    api.routes[("GET", "/apis/storage.k8s.io/v1/storageclasses")] = (200, {"items": [
        {"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": "rancher.io/local-path"}]})


def run_cli(api, tmp_path, monkeypatch, *args):
    from click.testing import CliRunner

    from meshreg.cli import main  # imported here: the server itself needs nothing from meshreg

    monkeypatch.chdir(tmp_path)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{api.server_address[1]}")
    return CliRunner().invoke(main, [*args, "--kubeconfig", kubeconfig])
