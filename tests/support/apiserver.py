"""A tiny local API server for wire tests: the real `kubernetes` client talks to it, it records every request."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from meshreg.cluster import client as clusters

PLURALS = {plural for plural, _ in clusters.KINDS.values()}


class FakeApiServer(ThreadingHTTPServer):
    """Records every request; answers from `routes` {(METHOD, path): (status, body[, [(header, value)]])}, or a
    callable taking the recorded request and returning that, else like an empty cluster. A str or bytes body is sent
    as text/plain."""

    request_queue_size = 64  # meshreg connects many times at once; a full backlog drops SYNs (1 s retries)

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests, self.routes = [], {}


class _Handler(BaseHTTPRequestHandler):
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
        status, answer, *more = (route(request) if callable(route) else route) or self._default(url.path, body)
        text = isinstance(answer, (str, bytes))  # a plain-text body (pod logs), else JSON
        data = (answer.encode() if isinstance(answer, str) else answer) if text else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (more[0] if more else []):  # extra headers, e.g. several Warning headers
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

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
