"""A mirror registry as meshreg renders it, its sidecar stood in by Envoy, and an upstream registry to mirror.

Inbound, the sidecar is the registry's (STRICT mTLS, RBAC translated from the rendered policies). Outbound, the same
Envoy answers for the mirror's upstream alias as the rendered Service, VirtualService, ServiceEntry and
DestinationRule say: it rewrites the Host header and originates TLS to the upstream. The mirror reaches it as its
HTTP proxy (HTTP_PROXY), which stands in for the iptables redirect that hands a pod's outbound traffic to its
sidecar: distribution still asks for `http://<alias>/v2/...`, exactly the URL it was rendered with. The upstream is
a second distribution with TLS (a certificate for its host name) and token auth, as public registries have it:
distribution 2.8's proxy sends its credentials only to a token realm, never as basic auth to the upstream itself.
"""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import yaml
from cryptography.hazmat.primitives import serialization

from meshreg.config import from_text
from meshreg.render import render

from . import envoy, rbac
from .envoy import HCM, ROUTER, TCP_PROXY, UPSTREAM_TLS, _address
from .mesh import one
from .pki import Authority, Identity, spiffe
from .processes import NO_AWS, Server, free_port, start_envoy

USER, PASSWORD = "mirror", "s3cret-upstream"


class Upstream:
    """A registry outside the mesh: TLS for its host name, token auth, its own storage; stopped and started."""

    def __init__(self, root: Path, ca: Authority, host: str):
        self.root, self.host = root, host
        self.port = free_port()
        self.ident = ca.issue(f"spiffe://upstream/{host}", label="upstream", server=True, dns=(host,))
        self.tokens = TokenServer(ca, service=host)
        self.config = root / "upstream.yml"
        self.config.write_text(yaml.safe_dump({
            "version": 0.1, "log": {"level": "info"},
            "storage": {"filesystem": {"rootdirectory": str(root / "upstream-data")}},
            "http": {"addr": f"127.0.0.1:{self.port}",
                     "tls": {"certificate": str(self.ident.cert), "key": str(self.ident.key)}},
            "auth": {"token": {"realm": self.tokens.realm, "service": host, "issuer": TokenServer.ISSUER,
                               "rootcertbundle": str(ca.ca_file)}}}))
        self.log = root / "upstream.log"
        self.server: Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = Server(["docker-registry", "serve", str(self.config)], log=self.log, env=NO_AWS)
        self.server.wait_http(f"https://{self.address}/", verify=ssl.create_default_context(cafile=self.ident.ca))

    def stop(self) -> None:
        if self.server:
            self.server.stop()
            self.server = None

    def close(self) -> None:
        self.stop()
        self.tokens.close()

    def requests(self, needle: str) -> int:
        """How many requests the upstream has answered whose URI contains `needle` (from its access log)."""
        return sum(1 for line in self.log.read_text(errors="replace").splitlines()
                   if "response completed" in line and needle in line)



class MirrorLab:
    """The `mirror_name` registry of `config_text`, its sidecar, and its upstream; `close()` stops everything."""

    def __init__(self, config_text: str, root: Path, *, mirror_name: str):
        self.root = root
        self.cfg = from_text(config_text, name="mirror.yaml")
        self.objects = render(self.cfg)
        self.reg = self.cfg.get_registry(mirror_name)
        self.ca = Authority(root / "pki", "mesh")
        self.servers: list[Server] = []
        self.upstream = Upstream(root, self.ca, self.reg.mirror.host)
        try:
            self.upstream.start()
            self._start_envoy()
            self.mirror = self.start_mirror(storage=root / "mirror-data")
        except BaseException:
            self.close()
            raise

    # --- what the render says ---------------------------------------------------------------------------------
    def rendered_config(self) -> str:
        return one(self.objects, "ConfigMap", f"{self.reg.name}-config")["data"]["config.yml"]

    def _egress_route(self) -> tuple[str, str, str]:
        """(alias host, Host header sent upstream, SNI) after checking the render really leads to the upstream."""
        alias = one(self.objects, "Service", f"{self.reg.name}-upstream")
        assert "selector" not in alias["spec"], "the alias must have no endpoints of its own"
        vs = one(self.objects, "VirtualService", f"{self.reg.name}-upstream")["spec"]
        [host] = vs["hosts"]
        assert host == f"{self.reg.name}-upstream.{self.cfg.namespace}.svc.cluster.local"
        assert yaml.safe_load(self.rendered_config())["proxy"]["remoteurl"] == f"http://{host}"
        [route] = vs["http"]
        assert "timeout" not in route, "a route timeout would cut long layer pulls"
        [dest] = route["route"]
        entry = one(self.objects, "ServiceEntry", f"{self.reg.name}-upstream")["spec"]
        assert dest["destination"]["host"] in entry["hosts"]
        [port] = [p for p in entry["ports"] if p["number"] == dest["destination"]["port"]["number"]]
        assert port["protocol"] == "HTTP" and port["targetPort"] == self.reg.mirror.port
        rule = one(self.objects, "DestinationRule", f"{self.reg.name}-upstream")["spec"]
        [level] = rule["trafficPolicy"]["portLevelSettings"]
        assert rule["host"] == dest["destination"]["host"] and level["port"]["number"] == port["number"]
        assert level["tls"]["mode"] == "SIMPLE"
        return host, route["rewrite"]["authority"], level["tls"]["sni"]

    # --- envoy ----------------------------------------------------------------------------------------------------
    def _start_envoy(self) -> None:
        pod = one(self.objects, "Deployment", self.reg.name)["spec"]["template"]
        labels, sa = pod["metadata"]["labels"], pod["spec"]["serviceAccountName"]
        server = self.ca.issue(spiffe(self.cfg.trust_domain, f"{self.cfg.namespace}/{sa}"), label="mirror",
                               server=True)
        policies = [o for o in self.objects if rbac.selects(o, namespace=self.cfg.namespace, pod_labels=labels)]
        self.registry_port, self.sidecar_port = free_port(), free_port()
        self.egress_port, self.passthrough_port, self.admin_port = free_port(), free_port(), free_port()
        alias, authority, sni = self._egress_route()
        listeners = [
            envoy.sidecar_listener(port=self.sidecar_port, server=server, trust_domain=self.cfg.trust_domain,
                                   rbac=rbac.http_filters(policies), tuning=envoy.Tuning()),
            _egress_listener(self.egress_port, domain=alias, authority=authority),
            # What the sidecar does for TLS the app originates itself: pass it through. Its upstream is gone.
            {"name": "passthrough", "address": _address(self.passthrough_port), "filter_chains": [{"filters": [
                {"name": "tcp", "typed_config": {"@type": TCP_PROXY, "stat_prefix": "passthrough",
                                                 "cluster": "gone"}}]}]},
        ]
        clusters = [envoy.registry_cluster(self.registry_port, envoy.Tuning()),
                    _origination_cluster(self.upstream.port, sni=sni, ca=self.ca.ca_file),
                    envoy.plain_cluster("gone", free_port())]
        self.servers.append(start_envoy(envoy.bootstrap(admin_port=self.admin_port, listeners=listeners,
                                                        clusters=clusters), self.root / "envoy.json"))

    def stat(self, name: str) -> int:
        """One counter of the sidecar's Envoy, e.g. http.egress.downstream_rq_5xx."""
        return envoy.counter(f"127.0.0.1:{self.admin_port}", name)

    # --- the mirror -----------------------------------------------------------------------------------------------
    def start_mirror(self, *, storage: Path, credentials: bool = True, remote: str | None = None,
                     wait: bool = True, log: str = "mirror.log", port: int | None = None) -> Server:
        """The registry with the rendered config.yml unchanged; address, storage and (as the Deployment's
        secretKeyRef env would) credentials from the environment. `remote` replaces the upstream URL; `port`
        starts another instance beside the one behind the sidecar."""
        config = self.root / "mirror.yml"
        config.write_text(self.rendered_config())
        address = f"127.0.0.1:{port or self.registry_port}"
        env = {**NO_AWS, "REGISTRY_HTTP_ADDR": address, "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(storage),
               "HTTP_PROXY": f"http://127.0.0.1:{self.egress_port}", "NO_PROXY": ""}
        if credentials:
            env |= self._credentials_env()
        if remote:
            env["REGISTRY_PROXY_REMOTEURL"] = remote
        server = Server(["docker-registry", "serve", str(config)], log=self.root / log, env=env)
        self.servers.append(server)
        if wait:
            server.wait_http(f"http://{address}/v2/")
        return server

    def _credentials_env(self) -> dict:
        env = one(self.objects, "Deployment", self.reg.name)["spec"]["template"]["spec"]["containers"][0]["env"]
        values = {"username": USER, "password": PASSWORD}  # the keys of the Secret the user creates
        return {e["name"]: values[e["valueFrom"]["secretKeyRef"]["key"]] for e in env}

    @property
    def direct(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    @property
    def sidecar(self) -> str:
        return f"127.0.0.1:{self.sidecar_port}"

    def identity(self, ns_sa: str) -> Identity:
        return self.ca.workload(self.cfg.trust_domain, ns_sa)

    def close(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.upstream.close()


def _egress_listener(port: int, *, domain: str, authority: str) -> dict:
    route = {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "0s",
                                                 "host_rewrite_literal": authority}}
    hcm = {"@type": HCM, "stat_prefix": "egress", "codec_type": "AUTO",
           "route_config": {"name": "egress", "virtual_hosts": [{"name": domain, "domains": [domain],
                                                                "routes": [route]}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]}
    return {"name": "egress", "address": _address(port), "filter_chains": [{"filters": [
        {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}


def _origination_cluster(port: int, *, sni: str, ca: Path) -> dict:
    """TLS to the upstream as Istio 1.20+ does for a SIMPLE DestinationRule: SNI, chain and host name verified."""
    cluster = envoy.plain_cluster("upstream", port)
    context = {"validation_context": {"trusted_ca": {"filename": str(ca)}, "match_typed_subject_alt_names": [
        {"san_type": "DNS", "matcher": {"exact": sni}}]}}
    cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": UPSTREAM_TLS, "sni": sni, "common_tls_context": context}}
    return cluster


class TokenServer:
    """The upstream's token realm (plain HTTP on loopback): a token for USER:PASSWORD, 401 for anyone else.

    Tokens are JWTs signed with a key whose certificate (x5c) chains to the CA the upstream trusts."""

    ISSUER = "lab-token-issuer"

    def __init__(self, ca: Authority, *, service: str):
        signer = ca.issue("spiffe://upstream/token-issuer", label="token-issuer")
        self.key = serialization.load_pem_private_key(signer.key.read_bytes(), password=None)
        der = signer.cert.read_bytes()
        from cryptography import x509

        self.x5c = [base64.b64encode(x509.load_pem_x509_certificate(der).public_bytes(
            serialization.Encoding.DER)).decode()]
        self.service = service
        self.asked: list[str | None] = []  # the user of every token request (None: no credentials)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _token_handler(self))
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def token(self, scope: str) -> str:
        now = datetime.datetime.now(datetime.timezone.utc)
        access = []
        if scope.startswith("repository:"):
            _, name, actions = scope.split(":")
            access = [{"type": "repository", "name": name, "actions": actions.split(",")}]
        claims = {"iss": self.ISSUER, "sub": USER, "aud": self.service, "iat": now, "nbf": now,
                  "exp": now + datetime.timedelta(minutes=5), "jti": str(uuid.uuid4()), "access": access}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": self.x5c})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _token_handler(tokens: TokenServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            user = _basic_user(self.headers.get("Authorization"))
            tokens.asked.append(user)
            if user != USER:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            scope = (parse_qs(urlsplit(self.path).query).get("scope") or [""])[0]
            body = json.dumps({"token": tokens.token(scope)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _basic_user(header: str | None) -> str | None:
    if not header or not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user if password == PASSWORD else f"{user} (wrong password)"
