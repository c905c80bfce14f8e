"""The lab's ingress gateway: an Envoy listener built from what meshreg renders for spec.ingress, in front of the
registry's sidecar, which it reaches over mTLS with the gateway's own mesh identity.

The translation follows Istio (1.30) and is independent of meshreg's evaluator:
- the Gateway server's `tls.mode` decides the client certificate (MUTUAL: required, OPTIONAL_MUTUAL: verified when
  presented, SIMPLE: not asked for); the CA and CRL come from the rendered `<credentialName>-cacert` Secret, as
  istiod serves them over SDS (trusted_ca and crl of the validation context); the server certificate stands for the
  credentialName Secret the user provides;
- the VirtualService gives the routes, in order: its hosts as domains (with any port); a match on the exact path,
  the method, headers (`:path` included: the normalized path with the query as sent), query parameters (by name
  as written), headers absent (`withoutHeaders`, present-match inverted) and JWT claims absent
  (`@request.auth.claims.X`, a metadata match on the jwt_authn payload, inverted); a direct response with its
  response headers, or the registry with no timeout, aborted with a status where the route has an abort fault (the
  fault filter after the RBAC filters, as istiod builds it);
- a RequestAuthentication becomes the jwt_authn filter as pilot/pkg/security/authn/policy_applier.go builds it:
  one provider per jwtRule, the payload kept in metadata under "payload", the token read only where `fromHeaders`
  says (Envoy's defaults otherwise: the Authorization header and `?access_token=`), a token either absent or valid, and
  (on gateways) the route cache cleared after a token is verified, so claims take part in routing;
- the AuthorizationPolicies selecting the gateway become RBAC filters (lab/rbac.py), after jwt_authn.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

from . import envoy, rbac
from .envoy import DOWNSTREAM_TLS, _address, _cert, _hcm
from .mesh import Lab, one
from .pki import Authority, Identity
from .processes import free_port

JWT_AUTHN = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
HTTP_FAULT = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
FAULT = "envoy.filters.http.fault"
# Istio puts the fault filter after the RBAC filters on every HTTP chain (seen in a real sidecar's and gateway's
# configuration): a route's abort answers only a request the policies let through.
FAULT_FILTER = {"name": FAULT, "typed_config": {"@type": HTTP_FAULT}}
UPSTREAM = "sidecar-from-ingress"
GATEWAY = "ingress-gateway"  # the gateway's name for its stdout file


def jwt_filter(request_authentications: list[dict]) -> list[dict]:
    rules = [r for ra in request_authentications for r in ra["spec"].get("jwtRules", [])]
    if not rules:
        return []
    providers = {}
    for i, rule in enumerate(rules):
        assert set(rule) <= {"issuer", "audiences", "jwks", "fromHeaders"}, \
            f"lab cannot translate jwtRule keys {sorted(rule)}"
        providers[f"origins-{i}"] = {"issuer": rule["issuer"], "audiences": rule.get("audiences", []),
                                     "forward": False, "payload_in_metadata": "payload", "clear_route_cache": True,
                                     "local_jwks": {"inline_string": rule["jwks"]}}
        if "fromHeaders" in rule:  # then Envoy reads only these, not its default Authorization and ?access_token=
            providers[f"origins-{i}"]["from_headers"] = [{"name": h["name"], "value_prefix": h.get("prefix", "")}
                                                         for h in rule["fromHeaders"]]
    each = [{"requires_any": {"requirements": [{"provider_name": n}, {"allow_missing": {}}]}} for n in providers]
    requires = each[0] if len(each) == 1 else {"requires_any": {"requirements": [
        *({"provider_name": n} for n in providers), {"requires_all": {"requirements": each}}]}}
    return [{"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": JWT_AUTHN, "providers": providers, "bypass_cors_preflight": True,
        "rules": [{"match": {"prefix": "/"}, "requires": requires}]}}]


def _string_match(spec: dict) -> dict:
    """An Istio StringMatch as Envoy's StringMatcher (regex: RE2, a full match)."""
    [(kind, value)] = spec.items()
    assert kind in ("exact", "prefix", "regex"), f"lab cannot translate the string match {spec}"
    return {"safe_regex": {"regex": value}} if kind == "regex" else {kind: value}


def _route_match(match: dict | None) -> dict:
    if match is None:
        return {"prefix": "/"}
    assert set(match) <= {"uri", "withoutHeaders", "headers", "queryParams", "method"}, f"lab cannot translate {match}"
    uri = match.get("uri", {"prefix": "/"})
    assert set(uri) <= {"exact", "prefix"}, f"lab cannot translate the uri match {uri}"
    out: dict = {"path" if "exact" in uri else "prefix": uri.get("exact", uri.get("prefix")),
                 "headers": [], "dynamic_metadata": [], "query_parameters": []}
    if "method" in match:
        out["headers"].append({"name": ":method", "string_match": _string_match(match["method"])})
    for name, spec in sorted(match.get("headers", {}).items()):
        out["headers"].append({"name": name, "string_match": _string_match(spec)})
    for name, spec in sorted(match.get("queryParams", {}).items()):
        out["query_parameters"].append({"name": name, "string_match": _string_match(spec)})
    for name, string_match in sorted(match.get("withoutHeaders", {}).items()):
        if name.startswith("@request.auth.claims."):
            value = {"string_match": {"safe_regex": {"regex": string_match["regex"]}}}
            out["dynamic_metadata"].append({"filter": rbac.JWT_FILTER, "invert": True, "path": [
                {"key": "payload"}, *({"key": c} for c in name.split(".")[3:])],
                "value": {"or_match": {"value_matchers": [{"list_match": {"one_of": value}}, value]}}})
        else:
            assert string_match == {}, f"lab cannot translate withoutHeaders {name}: {string_match}"
            out["headers"].append({"name": name, "present_match": True, "invert_match": True})
    return {k: v for k, v in out.items() if v}


def _fault(fault: dict) -> dict:
    """An abort fault as istiod builds it (route.go translateFault): the status, the percentage per million."""
    assert set(fault) == {"abort"} and set(fault["abort"]) <= {"httpStatus", "percentage"}, \
        f"lab cannot translate {fault}"
    abort = fault["abort"]
    per_million = int(float(abort.get("percentage", {}).get("value", 100)) * 10000)
    return {"@type": HTTP_FAULT, "abort": {"http_status": abort["httpStatus"],
                                           "percentage": {"numerator": per_million, "denominator": "MILLION"}}}


def routes(http: list[dict]) -> list[dict]:
    """A VirtualService's http routes as Envoy routes, in order (one per match)."""
    out = []
    for route in http:
        action: dict
        if "directResponse" in route:
            action = {"direct_response": {"status": route["directResponse"]["status"],
                                          "body": {"inline_string": route["directResponse"]["body"]["string"]}}}
        else:
            assert "timeout" not in route and len(route["route"]) == 1
            action = {"route": {"cluster": UPSTREAM, "timeout": "0s"}}
            if "fault" in route:
                action["typed_per_filter_config"] = {FAULT: _fault(route["fault"])}
        headers = [{"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
                   for k, v in route.get("headers", {}).get("response", {}).get("set", {}).items()]
        for match in route.get("match") or [None]:
            out.append({"match": _route_match(match), **action, **({"response_headers_to_add": headers} if headers
                                                                    else {})})
    return out


def listener(*, port: int, server: Identity, tls: dict, client_ca: tuple[Path, Path] | None, domains: list[str],
             http: list[dict], filters: list[dict], access_log: list[dict] | None = None,
             xfcc: dict = envoy.GATEWAY_XFCC) -> dict:
    mode = tls["mode"]
    assert mode in ("MUTUAL", "OPTIONAL_MUTUAL", "SIMPLE"), f"lab cannot translate tls mode {mode}"
    common: dict = {"tls_certificates": [_cert(server)], "alpn_protocols": ["h2", "http/1.1"],
                    "tls_params": {"tls_minimum_protocol_version": tls.get("minProtocolVersion", "TLSV1_2")
                                   .replace("TLSV1_", "TLSv1_")}}
    if mode != "SIMPLE":
        ca, crl = client_ca
        common["validation_context"] = {"trusted_ca": {"filename": str(ca)}, "crl": {"filename": str(crl)}}
    context = {"@type": DOWNSTREAM_TLS, "require_client_certificate": mode == "MUTUAL", "common_tls_context": common}
    hcm = _hcm("ingress", cluster=UPSTREAM, route_timeout="0s", filters=[*filters, FAULT_FILTER], domains=domains,
               access_log=access_log, xfcc=xfcc)
    hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"] = routes(http)
    return {"name": "ingress", "address": _address(port), "filter_chains": [{
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": context}, "filters": [hcm]}]}


class IngressLab(Lab):
    """A Lab whose config has spec.ingress: `meshreg certs init` runs first (the render needs the CA), then
    `setup(lab)` (issue and revoke certificates), then everything starts, the ingress listener included."""

    def __init__(self, config_text: str, root: Path, *, setup=None, xfcc: dict = envoy.GATEWAY_XFCC):
        """`xfcc`: the gateway's X-Forwarded-Client-Cert handling (Istio's gatewayTopology.forwardClientCertDetails;
        SANITIZE_SET unless set)."""
        self.xfcc = xfcc
        root.mkdir(parents=True, exist_ok=True)
        self.config_file = root / "meshreg.yaml"
        self.config_file.write_text(config_text)
        self.root = root
        self.meshreg("certs", "init")
        # The CA of the gateway's server certificate: neither the mesh CA nor the client CA.
        self.public = Authority(root / "pki-public", "public")
        self.server = self.public.issue("spiffe://public/server", label="ingress-server", server=True)
        # A cert dir with only the server's CA (ca.crt), for clients that bring a token or nothing.
        self.server_ca_dir = root / "server-ca"
        self.server_ca_dir.mkdir()
        (self.server_ca_dir / "ca.crt").write_bytes(self.public.ca_file.read_bytes())
        if setup:
            setup(self)
        super().__init__(config_text, root)

    def meshreg(self, *args: str) -> subprocess.CompletedProcess:
        """Run the real command on this lab's config; a failure fails the set-up with meshreg's message."""
        result = subprocess.run([sys.executable, "-m", "meshreg", *args, "-c", str(self.config_file)],
                                capture_output=True, text=True)
        assert result.returncode == 0, f"meshreg {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    def issue(self, name: str, *, out: Path | None = None) -> Path:
        """`meshreg certs issue NAME --server-ca <the public CA>`: the certs.d directory of the host."""
        args = ["certs", "issue", name, "--server-ca", str(self.public.ca_file)]
        args += ["--output-dir", str(out)] if out else []
        self.meshreg(*args)
        return (out or self.root / "ingress-ca" / "clients" / name) / "localhost"

    def _gateway_objects(self) -> list[dict]:
        gw = self.cfg.ingress.gateway
        return [o for o in self.objects if o["metadata"].get("namespace") == gw.namespace]

    def _client_ca(self) -> tuple[Path, Path] | None:
        secrets = [o for o in self._gateway_objects() if o["kind"] == "Secret"]
        if not secrets:
            return None
        [secret] = secrets
        assert secret["metadata"]["name"] == f"{self.cfg.ingress.credential_name}-cacert"
        paths = []
        for key in ("ca.crt", "ca.crl"):
            paths.append(self.root / f"gateway-{key}")
            paths[-1].write_bytes(base64.b64decode(secret["data"][key]))
        return paths[0], paths[1]

    def _virtual_service(self, gateway: dict) -> dict:
        vs = one(self.objects, "VirtualService", gateway["metadata"]["name"])["spec"]
        assert vs["gateways"] == [gateway["metadata"]["name"]]
        for route in vs["http"]:
            if "route" in route:
                assert route["route"][0]["destination"]["host"] == f"registry.{self.cfg.namespace}.svc.cluster.local"
        [server] = gateway["spec"]["servers"]
        assert server["hosts"] == [f"./{h}" for h in vs["hosts"]]
        return vs

    def _more_envoy(self, listeners: list[dict], clusters: list[dict]) -> None:
        selector = self.cfg.ingress.gateway.selector
        objs = self._gateway_objects()
        [gateway] = [o for o in objs if o["kind"] == "Gateway"]
        assert gateway["spec"]["selector"] == selector
        ns = self.cfg.ingress.gateway.namespace
        authns = [o for o in objs if o["kind"] == "RequestAuthentication"
                  and o["spec"]["selector"]["matchLabels"] == selector]
        policies = [o for o in objs if rbac.selects(o, namespace=ns, pod_labels=selector)]
        self.ingress_port = free_port()
        vs = self._virtual_service(gateway)
        listeners.append(listener(port=self.ingress_port, server=self.server, tls=gateway["spec"]["servers"][0]["tls"],
                                  client_ca=self._client_ca(), domains=[d for h in vs["hosts"] for d in (h, f"{h}:*")],
                                  http=vs["http"], filters=jwt_filter(authns) + rbac.http_filters(policies),
                                  access_log=self.access_logs(GATEWAY, selector, mode="CLIENT", namespace=ns),
                                  xfcc=self.xfcc))
        identity = self.identity(self.cfg.ingress.gateway.identity)
        clusters.append(envoy.sidecar_cluster(port=self.sidecar_port, client=identity, name=UPSTREAM,
                                              registry_uri=self.registry_identity.uri, tuning=self.tuning))

    @property
    def ingress(self) -> str:
        return f"localhost:{self.ingress_port}"
