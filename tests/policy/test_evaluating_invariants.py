"""The evaluator against the renderer: security invariants over random configs (hypothesis).

Every invariant runs twice: on policies as rendered, and on the same policies split as finely as they can be (the
smallest size limit per object that still renders), which takes every splitting path, the DENY rule rewritten
over principal prefixes included.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshreg.config import Writer
from meshreg.policy.evaluate import evaluate
from support.splitting import rendered
from support.strategies import FAST, NAMES, PREFIXES, TRICKS, WRITES, configs, covers, identities, make, writers

SPLIT = 900  # bytes per policy object, for the test that checks splitting happens at all


@pytest.fixture(params=[None, "finest"], ids=["as-rendered", "split"])
def max_bytes(request):
    return request.param


def allowed(cfg, identity, method, path, max_bytes=None) -> bool:
    return evaluate(rendered(cfg, max_bytes), identity=identity, method=method, path=path,
                    trust_domain=cfg.trust_domain).allowed


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
