"""Split policies on a real Envoy: for random configs rendered with their policies split as finely as possible
(the DENY over principal prefixes included), Envoy's decision equals `meshreg policy check`'s evaluator on every
request, so the invariants proven on the evaluator (tests/policy/test_evaluating_invariants.py) hold on Envoy."""

from __future__ import annotations

import random

import pytest

from meshreg.config import Writer
from meshreg.policy.evaluate import evaluate
from support.lab import envoy, rbac
from support.lab.clients import mtls_client, raw_request
from support.lab.pki import Authority, spiffe
from support.lab.processes import free_port, start_envoy
from support.splitting import finest
from support.strategies import GC, NAMES, PREFIXES, make

CONFIGS = 10
METHODS = ["POST", "PUT", "PATCH", "DELETE", "GET"]


def random_configs(seed: int = 1755):
    """Deterministic configs like the invariants' strategy draws, larger, so that every one is split."""
    rng = random.Random(seed)
    ids = [f"{ns}/{sa}" for ns in NAMES for sa in NAMES]
    out = []
    for _ in range(CONFIGS):
        writers = tuple(Writer(service_account=sa, delete=rng.random() < 0.5,
                               repositories=("*",) if rng.random() < 0.3 else tuple(sorted(rng.sample(PREFIXES, 2))))
                        for sa in rng.sample(ids, rng.randint(3, 8)))
        readers = ("*",) if rng.random() < 0.5 else tuple(rng.sample(ids, 3))
        retention = rng.choice([None, ("*",), ("team-a/",)])
        out.append(make(rng.choice(["cluster.local", "example.org"]), readers, writers, retention))
    return out


@pytest.fixture(scope="module")
def split_mesh(real_parts, tmp_path_factory):
    """One Envoy, one mTLS listener per config with that config's split policies; the upstream is closed."""
    root = tmp_path_factory.mktemp("split")
    ca = Authority(root / "pki", "mesh")
    cfgs = random_configs()
    listeners, ports = [], []
    for i, cfg in enumerate(cfgs):
        objects = finest(cfg)
        pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]
        labels = pod["metadata"]["labels"]
        policies = [o for o in objects if rbac.selects(o, namespace=cfg.namespace, pod_labels=labels)]
        server = ca.issue(spiffe(cfg.trust_domain, f"{cfg.namespace}/registry"), label=f"registry-{i}", server=True)
        ports.append(free_port())
        listeners.append(envoy.sidecar_listener(port=ports[-1], server=server, trust_domain=cfg.trust_domain,
                                                rbac=rbac.http_filters(policies), tuning=envoy.Tuning(),
                                                cluster="closed", name=f"config-{i}"))
    closed = envoy.registry_cluster(free_port(), envoy.Tuning(), name="closed")
    proxy = start_envoy(envoy.bootstrap(admin_port=free_port(), listeners=listeners, clusters=[closed]),
                        root / "envoy.json")
    try:
        yield cfgs, ports, ca
    finally:
        proxy.stop()


def requests_for(cfg):
    identities = sorted({w.service_account for w in cfg.writers_of(cfg.registry)} | {"apps/web", "b/ci", GC})
    for identity in identities:
        for prefix in PREFIXES[:3]:
            repo = prefix + "app"
            for method in METHODS:
                path = f"/v2/{repo}/manifests/sha256:00" if method == "DELETE" else f"/v2/{repo}/blobs/uploads/"
                yield identity, method, path
            yield identity, "POST", f"/v2/{repo.replace('/', '%2F')}/blobs/uploads/"


def test_every_config_is_really_split(split_mesh):
    cfgs, _, _ = split_mesh
    for cfg in cfgs:
        names = [o["metadata"]["name"] for o in finest(cfg) if o["kind"] == "AuthorizationPolicy"]
        assert "registry-deny-writes-2" in names, names
    trie = [r for cfg in cfgs for o in finest(cfg) if o["metadata"]["name"].startswith("registry-deny-writes")
            for r in o["spec"]["rules"] if {"principals", "notPrincipals"} <= set(r.get("from", [{}])[0]["source"])]
    assert trie, "no config took the DENY-over-prefixes path"


@pytest.mark.parametrize("index", range(CONFIGS))
def test_envoy_decides_every_request_as_the_evaluator_does(split_mesh, index):
    cfgs, ports, ca = split_mesh
    cfg = cfgs[index]
    objects = finest(cfg)
    disagreements, seen, certs = [], set(), {}
    for identity, method, path in requests_for(cfg):
        if identity not in certs:
            label = f"{index}-{identity.replace('/', '.')}"
            certs[identity] = ca.issue(spiffe(cfg.trust_domain, identity), label=label)
        ident = certs[identity]
        with mtls_client(f"127.0.0.1:{ports[index]}", ident, ca=ca.ca_file) as client:
            status = raw_request(client, method, path).status_code
        on_envoy = "DENY" if status == 403 else "ALLOW"
        offline = evaluate(objects, identity=identity, method=method, path=path,
                           trust_domain=cfg.trust_domain).decision
        seen.add(on_envoy)
        if on_envoy != offline:
            disagreements.append((identity, method, path, on_envoy, offline))
    assert disagreements == [] and seen == {"ALLOW", "DENY"}
