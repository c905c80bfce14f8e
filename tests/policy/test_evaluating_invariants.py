"""The evaluator against the renderer: security invariants over random configs (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meshreg import render as rendering
from meshreg.policy.evaluate import evaluate
from strategies import FAST, PREFIXES, TRICKS, WRITES, configs, covers, identities, make

def allowed(cfg, identity, method, path) -> bool:
    return evaluate(rendering.render(cfg), identity=identity, method=method, path=path,
                    trust_domain=cfg.trust_domain).allowed


@FAST
@given(configs(), identities, st.sampled_from(PREFIXES), st.sampled_from(WRITES), st.sampled_from(TRICKS))
def test_nobody_outside_a_prefixs_writers_can_write_under_it(cfg, identity, prefix, method, trick):
    repo = prefix + "app"
    path = trick.format(r=repo, e=repo.replace("/", "%2F"))
    writer = next((w for w in cfg.writers if w.service_account == identity), None)
    if allowed(cfg, identity, method, path):
        assert writer is not None and covers(writer, repo)  # the registry decodes %2F: repo is the target
        assert method != "DELETE" or writer.delete


@FAST
@given(configs(), st.sampled_from(["node-proxy", "anonymous"]), st.sampled_from(WRITES), st.sampled_from(PREFIXES))
def test_the_node_proxy_and_anonymous_can_never_write(cfg, identity, method, prefix):
    assert not allowed(cfg, identity, method, f"/v2/{prefix}app/blobs/uploads/")


@FAST
@given(configs(), st.sampled_from(PREFIXES))
def test_readers_and_the_node_proxy_can_always_pull(cfg, prefix):
    readers = [r.replace("*", "any") if r != "*" else "x/y" for r in cfg.readers]
    for identity in [*readers, "node-proxy"]:
        for method, path in [("GET", "/v2/"), ("HEAD", f"/v2/{prefix}app/manifests/v1"),
                             ("GET", f"/v2/{prefix}app/blobs/sha256:00")]:
            assert allowed(cfg, identity, method, path), (identity, method, path)


@FAST
@given(configs(), identities, st.sampled_from(WRITES), st.sampled_from(PREFIXES))
def test_with_no_writers_nobody_can_write(cfg, identity, method, prefix):
    cfg = make(cfg.trust_domain, cfg.readers, ())
    assert not allowed(cfg, identity, method, f"/v2/{prefix}app/blobs/uploads/")


@FAST
@given(configs(), st.sampled_from(PREFIXES), st.sampled_from(["POST", "PATCH", "PUT"]))
def test_writers_can_write_every_repository_they_cover(cfg, prefix, method):
    for writer in cfg.writers:
        repo = prefix + "app"
        if covers(writer, repo):
            assert allowed(cfg, writer.service_account, method, f"/v2/{repo}/blobs/uploads/")
