"""Config documents with an ingress, and the CA directory and JWKS they need, for several tests."""

from __future__ import annotations

import functools
import json
import pathlib

from meshreg import config
from meshreg.pki.authority import Authority

HOST = "registry.example.com"
ISSUER = "https://issuer.example.com"
GITHUB = "https://token.actions.githubusercontent.com"
GATEWAY = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


@functools.cache
def signing_key():
    """One EC key per test session: its public half is the issuer's JWKS."""
    from joserfc.jwk import ECKey

    return ECKey.generate_key("P-256", parameters={"kid": "test-1"})


def jwks() -> str:
    return json.dumps({"keys": [signing_key().as_dict(private=False)]})


def ingress_text(*, clients: str, extra: str = "", spec: str = "") -> str:
    """A config with one registry (deleteEnabled), one writer and an ingress with `clients` (YAML, 6 spaces)."""
    return f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: dev}}
spec:
  namespace: meshreg
  registry: {{deleteEnabled: true}}
  writers:
    - serviceAccount: builds/kaniko
      repositories: [builds/]
{spec}  ingress:
    host: {HOST}
    credentialName: registry-tls
{extra}    issuers:
      - issuer: {ISSUER}
        audiences: [{HOST}]
        jwks: '{jwks()}'
      - issuer: {GITHUB}
        audiences: [{HOST}]
        jwksUri: {GITHUB}/.well-known/jwks
    clients:
{clients}"""


CLIENTS = f"""\
      - name: loader
        method: mtls
        repositories: [images/]
        delete: true
      - name: team-a-ci
        method: mtls
        repositories: [team-a/]
        readRepositories: ["*"]
      - name: bot
        method: jwt
        issuer: {ISSUER}
        subject: ci-bot
        repositories: [bots/]
      - name: app-ci
        method: jwt
        issuer: {GITHUB}
        subject: "repo:acme/app:ref:refs/heads/*"
        claims: {{repository_owner: acme, job_workflow_ref: ["acme/workflows/*", "acme/app/*"]}}
        repositories: [acme/app/]
        readRepositories: [acme/]
"""


def load(tmp_path: pathlib.Path, text: str | None = None, *, ca: bool = True) -> config.Config:
    """Write `text` (default: every kind of client) to tmp_path/meshreg.yaml, create its CA first, and load it."""
    if ca and not (tmp_path / "ingress-ca").exists():
        Authority.create(tmp_path / "ingress-ca", domain=HOST, days=30)
    path = tmp_path / "meshreg.yaml"
    path.write_text(text or ingress_text(clients=CLIENTS))
    return config.load(str(path))
