"""A pod with a real injected sidecar on the real stack, standing where meshreg's registry stands (its labels,
ServiceAccount, Service and PeerAuthentication from the render), whose AuthorizationPolicies are replaced scenario by
scenario; istiod computes the sidecar's RBAC from them, and requests reach the sidecar's inbound listener from this
host over mTLS with certificates signed by istiod's own CA.

A scenario's policies are applied under new names (`<name>-g<N>`), so the sidecar's configuration shows which
scenario it enforces: its RBAC filters name every rule `ns[<ns>]-policy[<name>]-rule[<i>]`. The wait for istiod's
push reads the sidecar's own listener configuration (Envoy's admin config dump, through pilot-agent), never a sleep.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from support import policy_diff, wire
from support.realstack import Stack

PORT = 5000
GENERATION = "meshreg.dev/differential-generation"
_RULE_KEY = re.compile(r"ns\[[^\]]*\]-policy\[[^\]]*\]-rule\[\d+\]")
# The application container: busybox's httpd answers whatever the sidecar lets through (404, 501, ...); only that it
# answered matters (the sidecar adds x-envoy-upstream-service-time).
BACKEND = "mkdir -p /tmp/www && echo backend > /tmp/www/index.html && exec httpd -f -p 5000 -h /tmp/www"


class MeshCA:
    """Client certificates for any SPIFFE name, signed with istiod's CA key (Secret istio-ca-secret)."""

    def __init__(self, stack: Stack, root: Path):
        data = json.loads(stack.kubectl("-n", "istio-system", "get", "secret", "istio-ca-secret", "-o",
                                        "json").stdout)["data"]
        self.cert = x509.load_pem_x509_certificate(base64.b64decode(data["ca-cert.pem"]))
        self.key = serialization.load_pem_private_key(base64.b64decode(data["ca-key.pem"]), None)
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._issued: dict[str, tuple[str, str]] = {}

    def issue(self, uri: str) -> tuple[str, str]:
        """(certificate file, key file) for `uri`, issued on first use."""
        if uri not in self._issued:
            key = ec.generate_private_key(ec.SECP256R1())
            now, hour = datetime.datetime.now(datetime.timezone.utc), datetime.timedelta(hours=1)
            cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.cert.subject)
                    .public_key(key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - hour).not_valid_after(now + 6 * hour)
                    .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True)
                    .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH,
                                                          x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                    .sign(self.key, hashes.SHA256()))  # type: ignore[arg-type]
            label = re.sub(r"[^A-Za-z0-9]+", "_", uri)
            cert_file, key_file = self.root / f"{label}.crt", self.root / f"{label}.key"
            cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM) +
                                  self.cert.public_bytes(serialization.Encoding.PEM))
            key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            self._issued[uri] = (str(cert_file), str(key_file))
        return self._issued[uri]


def _static_objects(objects: list[dict]) -> list[dict]:
    """Namespace, the registry's ServiceAccount, Service and PeerAuthentication, and a pod with its labels."""
    keep = [o for o in objects if o["metadata"].get("namespace", policy_diff.NAMESPACE) == policy_diff.NAMESPACE
            and ((o["kind"] == "Namespace" and o["metadata"]["name"] == policy_diff.NAMESPACE)
                 or (o["kind"] in ("ServiceAccount", "Service", "PeerAuthentication")
                 and o["metadata"]["name"] == policy_diff.TARGET))]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "target", "namespace": policy_diff.NAMESPACE,
                        "labels": policy_diff.pod_labels(objects),
                        "annotations": {"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true\n"}},
           "spec": {"serviceAccountName": policy_diff.TARGET, "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "registry", "image": "docker.io/library/busybox:lab",
                                    "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", BACKEND],
                                    "ports": [{"name": "http", "containerPort": PORT}]}]}}
    return [*keep, pod]


def _key(policy: dict, rule: int) -> str:
    """The name a sidecar's RBAC filter gives to rule `rule` of an AuthorizationPolicy."""
    return f"ns[{policy['metadata']['namespace']}]-policy[{policy['metadata']['name']}]-rule[{rule}]"


class MeshTarget:
    """The target pod in namespace pe-diff; `close()` deletes the namespace and everything in it."""

    def __init__(self, stack: Stack, root: Path):
        self.stack, self.root = stack, root
        self.generation = 0
        base = policy_diff.scenario(0).objects
        self.labels = policy_diff.pod_labels(base)
        try:
            stack.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                 "items": _static_objects(base)}))
            stack.kubectl("-n", policy_diff.NAMESPACE, "wait", "--for=condition=Ready", "pod/target",
                          "--timeout=120s")
            pod = json.loads(stack.kubectl("-n", policy_diff.NAMESPACE, "get", "pod", "target", "-o",
                                           "json").stdout)
            self.ip = pod["status"]["podIP"]
            self.ca = MeshCA(stack, root / "certs")
        except BaseException:
            self.close()
            raise

    def connection_manager(self) -> dict:
        """The HTTP connection manager of the sidecar's inbound chain for the registry port, from Envoy itself."""
        out = self.stack.kubectl("-n", policy_diff.NAMESPACE, "exec", "target", "-c", "istio-proxy", "--",
                                 "pilot-agent", "request", "GET",
                                 "config_dump?resource=dynamic_listeners&name_regex=virtualInbound").stdout
        dump = json.loads(out[out.index("{"):])  # pilot-agent may log a line first
        for config in dump.get("configs", []):
            for chain in config.get("active_state", {}).get("listener", {}).get("filter_chains", []):
                if chain.get("filter_chain_match", {}).get("destination_port") == PORT:
                    [hcm] = [f["typed_config"] for f in chain["filters"] if "http_connection_manager" in f["name"]]
                    return dict(hcm)
        raise AssertionError(f"the sidecar has no inbound chain for port {PORT}")

    def rbac(self) -> list[dict]:
        """The RBAC filters of the sidecar's inbound HTTP chain for the registry port, in order."""
        return [f["typed_config"] for f in self.connection_manager().get("http_filters", [])
                if f["name"] == "envoy.filters.http.rbac"]

    def _renamed(self, scenario: policy_diff.Scenario) -> list[dict]:
        out = []
        for policy in scenario.policies():
            renamed = json.loads(json.dumps(policy))
            renamed["metadata"]["name"] += f"-g{self.generation}"
            renamed["metadata"].setdefault("labels", {})[GENERATION] = str(self.generation)
            out.append(renamed)
        return out

    def apply(self, scenario: policy_diff.Scenario, *, timeout: float = 60.0) -> list[dict]:
        """Replace the policies with `scenario`'s; returns the sidecar's RBAC filters once they are exactly its."""
        self.generation += 1
        renamed = self._renamed(scenario)
        selected = [p for p in renamed if policy_diff.selects(p, self.labels)]
        expected = {_key(p, i) for p in selected for i, _ in enumerate(p["spec"].get("rules") or [])}
        # Istio 1.14 renders an ALLOW policy without rules as one rule that matches nothing (`not any`).
        optional = {_key(p, 0) for p in selected if not p["spec"].get("rules")}
        self.stack.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                 "items": renamed}))
        self.stack.kubectl("-n", policy_diff.NAMESPACE, "delete", "authorizationpolicy", "-l",
                           f"{GENERATION},{GENERATION}!={self.generation}", "--wait=false")
        deadline = time.monotonic() + timeout
        while True:
            filters = self.rbac()
            seen = set(_RULE_KEY.findall(json.dumps(filters)))
            if expected <= seen <= expected | optional:
                return filters
            if time.monotonic() > deadline:
                raise AssertionError(f"seed {scenario.seed}: the sidecar's RBAC never became the scenario's: "
                                     f"missing {sorted(expected - seen)}, extra {sorted(seen - expected)}")
            time.sleep(0.1)

    def connection(self, identity: str) -> wire.Connection:
        """A new connection to the sidecar's inbound port as `identity` (`anonymous`: plain text)."""
        if identity == policy_diff.ANONYMOUS:
            return wire.Connection((self.ip, PORT), None)
        ns, sa = identity.split("/")
        cert, key = self.ca.issue(f"spiffe://cluster.local/ns/{ns}/sa/{sa}")
        return wire.Connection((self.ip, PORT), wire.client_context(cert=cert, key=key))

    def close(self) -> None:
        subprocess.run(["kubectl", "delete", "namespace", policy_diff.NAMESPACE, "--ignore-not-found",
                        "--wait=true", "--timeout=120s"], env=self.stack.env(), capture_output=True, timeout=150)
