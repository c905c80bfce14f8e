"""The sidecar mode's security invariants hold in ambient mode too (hypothesis), and whatever skips the waypoint never
reaches the registry."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meshreg import config
from meshreg import render as rendering
from meshreg.policy.evaluate import evaluate
from support.strategies import FAST, PREFIXES, TRICKS, WRITES, configs, covers, identities, make


def ambient(cfg):
    """The same trust domain, readers and writers with `mesh: ambient` (and no retention)."""
    return make(cfg.trust_domain, cfg.readers, cfg.writers, mesh="ambient")


ambient_configs = configs().map(ambient)


def decision(cfg, identity, method, path, *, skip_waypoint=False):
    return evaluate(rendering.render(cfg), identity=identity, method=method, path=path,
                    trust_domain=cfg.trust_domain, skip_waypoint=skip_waypoint)


def allowed(cfg, identity, method, path) -> bool:
    return decision(cfg, identity, method, path).allowed


@FAST
@given(ambient_configs, identities, st.sampled_from(PREFIXES), st.sampled_from(WRITES), st.sampled_from(TRICKS))
def test_nobody_outside_a_prefixs_writers_can_write_under_it(cfg, identity, prefix, method, trick):
    repo = prefix + "app"
    path = trick.format(r=repo, e=repo.replace("/", "%2F"))
    writer = next((w for w in cfg.writers if w.service_account == identity), None)
    if allowed(cfg, identity, method, path):
        assert writer is not None and covers(writer, repo)
        assert method != "DELETE" or writer.delete


@FAST
@given(ambient_configs, st.sampled_from(["node-proxy", "anonymous"]), st.sampled_from(WRITES),
       st.sampled_from(PREFIXES))
def test_the_node_proxy_and_anonymous_can_never_write(cfg, identity, method, prefix):
    assert not allowed(cfg, identity, method, f"/v2/{prefix}app/blobs/uploads/")


@FAST
@given(ambient_configs, st.sampled_from(PREFIXES))
def test_readers_and_the_node_proxy_can_always_pull_through_the_waypoint(cfg, prefix):
    readers = [r.replace("*", "any") if r != "*" else "x/y" for r in cfg.readers]
    for identity in [*readers, "node-proxy"]:
        for method, path in [("GET", "/v2/"), ("HEAD", f"/v2/{prefix}app/manifests/v1")]:
            d = decision(cfg, identity, method, path)
            assert d.allowed and d.hop == "waypoint", (identity, method, path, d.reason)


@FAST
@given(ambient_configs, identities, st.sampled_from(WRITES), st.sampled_from(PREFIXES))
def test_with_no_writers_nobody_can_write(cfg, identity, method, prefix):
    cfg = ambient(config.Config(trust_domain=cfg.trust_domain, registries=(config.Registry(readers=cfg.readers),)))
    assert not allowed(cfg, identity, method, f"/v2/{prefix}app/blobs/uploads/")


@FAST
@given(ambient_configs, st.sampled_from(PREFIXES), st.sampled_from(["POST", "PATCH", "PUT"]))
def test_writers_can_write_every_repository_they_cover(cfg, prefix, method):
    for writer in cfg.writers:
        repo = prefix + "app"
        if covers(writer, repo):
            assert allowed(cfg, writer.service_account, method, f"/v2/{repo}/blobs/uploads/")


@FAST
@given(ambient_configs, st.one_of(identities, st.just("anonymous")),
       st.sampled_from(["GET", "HEAD", *WRITES]), st.sampled_from(PREFIXES))
def test_a_request_that_skips_the_waypoint_never_reaches_the_registry(cfg, identity, method, prefix):
    d = decision(cfg, identity, method, f"/v2/{prefix}app/manifests/v1", skip_waypoint=True)
    assert (d.decision, d.hop) == ("DENY", "ztunnel"), d.reason
