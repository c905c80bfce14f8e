"""The policy operations as typed reports: the listing of one registry, an offline check, and a grant or revoke."""

from __future__ import annotations

import pytest

from meshreg import config
from meshreg.config import Writer
from meshreg.errors import ConfigError, UsageError
from meshreg.operations import policy as policies
from meshreg.policy.listing import (
    ClientEntry,
    NodeProxyEntry,
    PushProxyEntry,
    ReaderEntry,
    RegistryEntry,
    WaypointEntry,
    WriterEntry,
)
from support.configs import AMBIENT, GC_CONFIG, SEVERAL_WRITERS, minimal
from support.ingress_configs import GATEWAY, HOST, ISSUER, load
from support.paths import ROOT

PUSH_PROXY = minimal("  pushProxy: {enabled: true, repositories: [dev/]}\n"
                     "  writers: [{serviceAccount: builds/kaniko, repositories: [team-a/]}]\n")


def cfg_of(text: str) -> config.Config:
    return config.from_text(text, name="t.yaml")


def test_the_listing_names_each_writer_with_its_scope_grants_and_principal():
    listing = policies.listing(cfg_of(SEVERAL_WRITERS), registry=None)
    assert listing.writers == (
        WriterEntry("builds/kaniko", ("*",), delete=True, push=True, principal="example.org/ns/builds/sa/kaniko"),
        WriterEntry("team-a/builder", ("team-a/",), delete=False, push=True,
                    principal="example.org/ns/team-a/sa/builder"),
        WriterEntry("ci/buildkit", ("shared/base/", "team-b/"), delete=False, push=True,
                    principal="example.org/ns/ci/sa/buildkit"))
    assert listing.readers == (ReaderEntry("apps/*", "example.org/ns/apps/sa/*"),
                               ReaderEntry("ci/runner", "example.org/ns/ci/sa/runner"))
    assert (listing.source, listing.trust_domain, listing.namespace, listing.others) == (
        "t.yaml", "example.org", "registry", ())
    assert listing.node_proxy == NodeProxyEntry(enabled=True, port=5000, host_ip="127.0.0.1",
                                                principal="example.org/ns/registry/sa/node-proxy")
    assert (listing.waypoint, listing.push_proxy, listing.ingress) == (None, None, None)


def test_a_readonly_registrys_publisher_is_its_one_writer_and_the_others_are_named():
    cfg = config.load(str(ROOT / "examples" / "gitpod-separate-registries" / "meshreg.yaml"))
    listing = policies.listing(cfg, registry="service-images")
    assert listing.registry == RegistryEntry("service-images", "readonly", default=False,
                                             publisher="gitpod/airgap-loader")
    assert [w.service_account for w in listing.writers] == ["gitpod/airgap-loader"]
    assert listing.others == ("workspace-images",)


def test_the_retention_identity_is_listed_as_a_writer_that_only_deletes():
    listing = policies.listing(cfg_of(GC_CONFIG), registry="workspace-images")
    [retention] = [w for w in listing.writers if not w.push]
    assert retention.delete and retention.repositories == ("*",)


def test_in_ambient_mode_the_listing_names_the_waypoint():
    listing = policies.listing(cfg_of(AMBIENT), registry=None)
    assert listing.waypoint == WaypointEntry("waypoint", "example.org/ns/registry/sa/waypoint")


def test_the_push_proxy_is_listed_with_its_role_and_how_to_grant_and_connect():
    listing = policies.listing(cfg_of(PUSH_PROXY), registry=None)
    assert listing.push_proxy == PushProxyEntry(
        namespace="meshreg-push", service_account="meshreg-push/push-proxy",
        principal="cluster.local/ns/meshreg-push/sa/push-proxy", repositories=("dev/",), port=5000,
        role="meshreg-connect",
        grant="kubectl -n meshreg-push create rolebinding NAME --role=meshreg-connect --user=USER (or --group)",
        connect="")
    assert listing.push_proxy.service_account in [w.service_account for w in listing.writers]


def test_an_unknown_registry_is_refused():
    with pytest.raises(ConfigError, match="nope"):
        policies.listing(cfg_of(SEVERAL_WRITERS), registry="nope")


def test_the_ingress_is_listed_with_each_clients_identity(tmp_path):
    listing = policies.listing(load(tmp_path), registry=None)
    assert listing.ingress is not None
    assert (listing.ingress.host, listing.ingress.registry, listing.ingress.gateway.principal) == (
        HOST, "registry", GATEWAY)
    clients = {c.name: c for c in listing.ingress.clients}
    assert clients["loader"] == ClientEntry("loader", "mtls", principal=f"{HOST}/client/loader",
                                            request_principal=None, claims=None, repositories=("images/",),
                                            read_repositories=("images/",), delete=True)
    assert (clients["bot"].principal, clients["bot"].request_principal, clients["bot"].claims) == (
        None, f"{ISSUER}/ci-bot", {})


def test_a_check_reports_every_request_of_a_push_and_whether_all_were_allowed():
    cfg = cfg_of(SEVERAL_WRITERS)
    report = policies.check(cfg, identity="team-a/builder", what=("push", "team-a/app:v1"), registry=None,
                            skip_waypoint=False)
    assert report.allowed and len(report.requests) == 7
    assert [(r.method, r.path) for r in report.requests][:3] == [
        ("GET", "/v2/"), ("HEAD", f"/v2/team-a/app/blobs/sha256:{'0' * 64}"), ("POST", "/v2/team-a/app/blobs/uploads/")]
    denied = policies.check(cfg, identity="team-a/builder", what=("push", "team-b/app"), registry=None,
                            skip_waypoint=False)
    assert not denied.allowed and any(r.decision.decision == "DENY" for r in denied.requests)
    assert denied.identity == "team-a/builder" and denied.what == ("push", "team-b/app")


def test_a_check_through_the_ingress_goes_to_the_registry_it_serves_and_only_there(tmp_path):
    cfg = load(tmp_path)
    assert policies.served_registry(cfg, "client:loader", None) == "registry"
    assert policies.served_registry(cfg, "builds/kaniko", "other") == "other"
    with pytest.raises(UsageError, match="the ingress serves registry 'registry' only"):
        policies.check(cfg, identity="client:loader", what=("push", "images/x"), registry="other",
                       skip_waypoint=False)
    assert policies.check(cfg, identity="client:loader", what=("push", "images/x"), registry=None,
                          skip_waypoint=False).allowed


def test_a_bad_request_is_refused_before_anything_is_evaluated():
    with pytest.raises(UsageError, match="is not a repository name"):
        policies.check(cfg_of(SEVERAL_WRITERS), identity="a/b", what=("push", "Bad/Repo"), registry=None,
                       skip_waypoint=False)


def test_a_grant_writes_the_file_and_reports_the_writer_before_and_after(write_config):
    path = str(write_config(minimal("  writers: [{serviceAccount: builds/kaniko}]\n")))
    report = policies.edit("grant", config_path=path, identity="ci/builder", repositories=("team-a/",),
                           delete=False, registry=None)
    assert (report.path, report.identity, report.before) == (path, "ci/builder", None)
    assert report.after == Writer("ci/builder", ("team-a/",), False)
    assert [w.service_account for w in config.load(path).registries[0].writers] == ["builds/kaniko", "ci/builder"]
    revoked = policies.edit("revoke", config_path=path, identity="ci/builder", repositories=(), delete=False,
                            registry=None)
    assert (revoked.before, revoked.after) == (report.after, None)
    assert [w.service_account for w in config.load(path).registries[0].writers] == ["builds/kaniko"]


def test_editing_a_missing_file_says_so_and_how_to_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^meshreg.yaml: no such file \(run `meshreg init` first\)$"):
        policies.edit("grant", config_path=None, identity="a/b", repositories=(), delete=False, registry=None)
    with pytest.raises(ConfigError, match=r"^x.yaml: no such file$"):
        policies.edit("grant", config_path="x.yaml", identity="a/b", repositories=(), delete=False, registry=None)


def test_apply_after_an_edit_publishes_only_the_authorization_policies(write_config):
    path = str(write_config(minimal("  writers: [{serviceAccount: builds/kaniko}]\n")))
    report = policies.edit("grant", config_path=path, identity="ci/builder", repositories=(), delete=False,
                           registry=None)
    objects = policies.authorization_policies(report)
    assert objects and {o["kind"] for o in objects} == {"AuthorizationPolicy"}
    assert any("cluster.local/ns/ci/sa/builder" in str(o["spec"]) for o in objects)
