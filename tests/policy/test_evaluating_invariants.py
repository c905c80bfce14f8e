"""The evaluator against the renderer: security invariants over random configs (hypothesis).

Every invariant runs twice: on policies as rendered, and on the same policies split as finely as they can be (the
smallest size limit per object that still renders), which takes every splitting path, the DENY rule rewritten
over principal prefixes included.
"""

from __future__ import annotations

import functools
import json
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshreg import config
from meshreg import render as rendering
from meshreg.config import Writer
from meshreg.errors import ConfigError
from meshreg.policy.evaluate import evaluate
from meshreg.render import policies

NAMES = ["a", "b", "team-a", "team-ab", "ci"]
PREFIXES = ["team-a/", "team-ab/", "team-a/app/", "b/", "shared/base/"]
WRITES = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
TRICKS = ["/v2/{r}/blobs/uploads/", "/v2/{r}/manifests/x", "/v2/x/../{r}/blobs/uploads/",
          "/v2/{e}/blobs/uploads/", "/v2//{r}/manifests/x", "/v2/{r}/%2e%2e/{r}/manifests/x"]
GC = "meshreg/registry-gc"  # the retention identity when the config has retention rules
SPLIT = 900  # bytes per policy object, for the test that checks splitting happens at all
identities = st.one_of(st.builds(lambda ns, sa: f"{ns}/{sa}", st.sampled_from(NAMES), st.sampled_from(NAMES)),
                       st.just(GC))
writer_ids = st.builds(lambda ns, sa: f"{ns}/{sa}", st.sampled_from(NAMES), st.sampled_from(NAMES))
prefix_lists = st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=2, unique=True).map(lambda p: tuple(sorted(p)))


@st.composite
def configs(draw):
    ids = draw(st.lists(writer_ids, unique=True, max_size=4))
    writers = tuple(Writer(service_account=i, delete=draw(st.booleans()),
                           repositories=draw(st.one_of(st.just(("*",)), prefix_lists))) for i in ids)
    readers = draw(st.one_of(st.just(("*",)), st.lists(writer_ids, unique=True, max_size=3).map(tuple)))
    retention = draw(st.one_of(st.none(), st.just(("*",)), prefix_lists))
    return make(draw(st.sampled_from(["cluster.local", "example.org"])), readers, writers, retention)


def make(trust_domain, readers, writers, retention=None):
    """A config through the public YAML interface (JSON is YAML); `retention`: prefixes with a retention rule."""
    registry: dict = {"deleteEnabled": True}
    if retention:
        registry["gc"] = {"schedule": "0 3 * * 0"}
        registry["retention"] = {"rules": [{"repositories": list(retention), "keepNewest": 3}]}
    spec = {"trustDomain": trust_domain, "readers": list(readers), "registry": registry,
            "writers": [{"serviceAccount": w.service_account, "repositories": list(w.repositories),
                         "delete": w.delete} for w in writers]}
    doc = {"apiVersion": "meshreg.dev/v1alpha1", "kind": "MeshRegistry", "metadata": {"name": "t"}, "spec": spec}
    return config.from_text(json.dumps(doc), name="random.yaml")


def rendered(cfg, max_bytes):
    if max_bytes is None:
        return rendering.render(cfg)
    if max_bytes == "finest":
        return finest(cfg)
    split = functools.partial(policies.registry_policies, max_bytes=max_bytes)
    with mock.patch.object(policies, "registry_policies", split):
        return rendering.render(cfg)


_FINEST: dict = {}


def finest(cfg):
    """The render with the smallest per-object limit that still renders (each rule alone must fit)."""
    key = repr(cfg)
    if key not in _FINEST:
        for limit in range(500, 4000, 50):
            try:
                _FINEST[key] = rendered(cfg, limit)
                break
            except ConfigError:
                continue
    return _FINEST[key]


@pytest.fixture(params=[None, "finest"], ids=["as-rendered", "split"])
def max_bytes(request):
    return request.param


def allowed(cfg, identity, method, path, max_bytes=None) -> bool:
    return evaluate(rendered(cfg, max_bytes), identity=identity, method=method, path=path,
                    trust_domain=cfg.trust_domain).allowed


def writers(cfg):
    """Who the policies let write: the writers and, with retention rules, the DELETE-only retention identity."""
    return cfg.writers_of(cfg.registry)


def covers(writer: Writer, repo: str) -> bool:
    return not writer.scoped or any((repo + "/").startswith(p) for p in writer.repositories)


FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FAST
@given(configs(), identities, st.sampled_from(PREFIXES), st.sampled_from(WRITES), st.sampled_from(TRICKS))
def test_nobody_outside_a_prefixs_writers_can_write_under_it(max_bytes, cfg, identity, prefix, method, trick):
    repo = prefix + "app"
    path = trick.format(r=repo, e=repo.replace("/", "%2F"))
    writer = next((w for w in writers(cfg) if w.service_account == identity), None)
    if allowed(cfg, identity, method, path, max_bytes):
        assert writer is not None and covers(writer, repo)  # the registry decodes %2F: repo is the target
        assert method != "DELETE" or writer.delete
        assert method == "DELETE" or writer.push  # the retention identity only ever deletes


@FAST
@given(configs(), st.sampled_from(["node-proxy", "anonymous"]), st.sampled_from(WRITES), st.sampled_from(PREFIXES))
def test_the_node_proxy_and_anonymous_can_never_write(max_bytes, cfg, identity, method, prefix):
    assert not allowed(cfg, identity, method, f"/v2/{prefix}app/blobs/uploads/", max_bytes)


@FAST
@given(configs(), st.sampled_from(PREFIXES))
def test_readers_and_the_node_proxy_can_always_pull(max_bytes, cfg, prefix):
    readers = [r.replace("*", "any") if r != "*" else "x/y" for r in cfg.readers]
    for identity in [*readers, "node-proxy"]:
        for method, path in [("GET", "/v2/"), ("HEAD", f"/v2/{prefix}app/manifests/v1"),
                             ("GET", f"/v2/{prefix}app/blobs/sha256:00")]:
            assert allowed(cfg, identity, method, path, max_bytes), (identity, method, path)


@FAST
@given(configs(), identities, st.sampled_from(WRITES), st.sampled_from(PREFIXES))
def test_with_no_writers_nobody_can_write(max_bytes, cfg, identity, method, prefix):
    cfg = make(cfg.trust_domain, cfg.readers, ())
    assert not allowed(cfg, identity, method, f"/v2/{prefix}app/blobs/uploads/", max_bytes)


@FAST
@given(configs(), st.sampled_from(PREFIXES), st.sampled_from(["POST", "PATCH", "PUT"]))
def test_writers_can_write_every_repository_they_cover(max_bytes, cfg, prefix, method):
    repo = prefix + "app"
    for writer in writers(cfg):
        if not covers(writer, repo):
            continue
        if writer.push:
            assert allowed(cfg, writer.service_account, method, f"/v2/{repo}/blobs/uploads/", max_bytes)
        else:  # the retention identity
            assert allowed(cfg, writer.service_account, "DELETE", f"/v2/{repo}/manifests/sha256:00", max_bytes)


def test_the_split_configs_really_are_split():
    """The 'split' runs above are only a proof if SPLIT cuts every policy kind into several objects."""
    ws = tuple(Writer(service_account=f"{ns}/{sa}", repositories=("team-a/",)) for ns in NAMES for sa in NAMES[:3])
    objects = rendered(make("cluster.local", ("a/a", "b/b", "ci/ci"), ws, ("*",)), SPLIT)
    names = [o["metadata"]["name"] for o in objects if o["kind"] == "AuthorizationPolicy"]
    for kind in ("deny-writes", "allow-writes"):
        assert f"registry-{kind}-2" in names, names
    deny = [r for o in objects if o["metadata"]["name"].startswith("registry-deny-writes") for r in o["spec"]["rules"]]
    assert any("principals" in r["from"][0]["source"] and "notPrincipals" in r["from"][0]["source"] for r in deny)
