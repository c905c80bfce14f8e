"""The evaluator against the renderer: security invariants over random configs (hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import json

from meshreg import config
from meshreg import render as rendering
from meshreg.config import Writer
from meshreg.policy.evaluate import evaluate

NAMES = ["a", "b", "team-a", "team-ab", "ci"]
PREFIXES = ["team-a/", "team-ab/", "team-a/app/", "b/", "shared/base/"]
WRITES = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
TRICKS = ["/v2/{r}/blobs/uploads/", "/v2/{r}/manifests/x", "/v2/x/../{r}/blobs/uploads/",
          "/v2/{e}/blobs/uploads/", "/v2//{r}/manifests/x", "/v2/{r}/%2e%2e/{r}/manifests/x"]
identities = st.builds(lambda ns, sa: f"{ns}/{sa}", st.sampled_from(NAMES), st.sampled_from(NAMES))


@st.composite
def configs(draw):
    ids = draw(st.lists(identities, unique=True, max_size=4))
    writers = tuple(Writer(service_account=i, delete=draw(st.booleans()),
                           repositories=draw(st.one_of(st.just(("*",)), st.lists(
                               st.sampled_from(PREFIXES), min_size=1, max_size=2, unique=True).map(
                               lambda p: tuple(sorted(p)))))) for i in ids)
    readers = draw(st.one_of(st.just(("*",)), st.lists(identities, unique=True, max_size=3).map(tuple)))
    return make(draw(st.sampled_from(["cluster.local", "example.org"])), readers, writers)


def make(trust_domain, readers, writers):
    """A config through the public YAML interface (JSON is YAML)."""
    spec = {"trustDomain": trust_domain, "readers": list(readers), "registry": {"deleteEnabled": True},
            "writers": [{"serviceAccount": w.service_account, "repositories": list(w.repositories),
                         "delete": w.delete} for w in writers]}
    doc = {"apiVersion": "meshreg.dev/v1alpha1", "kind": "MeshRegistry", "metadata": {"name": "t"}, "spec": spec}
    return config.from_text(json.dumps(doc), name="random.yaml")


def allowed(cfg, identity, method, path) -> bool:
    return evaluate(rendering.render(cfg), identity=identity, method=method, path=path,
                    trust_domain=cfg.trust_domain).allowed


def covers(writer: Writer, repo: str) -> bool:
    return not writer.scoped or any((repo + "/").startswith(p) for p in writer.repositories)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


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
