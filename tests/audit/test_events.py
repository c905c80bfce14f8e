"""From a record to an event of the trail: the repository the registry acted on (path tricks included), the action,
the digest, who (as the config names them), and which policy refused."""

from __future__ import annotations

import pytest

from meshreg import config
from meshreg.audit import Query, event, identify, parse_line, refused_by, target, trail
from support.audit_lines import DIGEST, line
from support.configs import minimal
from support.ingress_configs import CLIENTS, GITHUB, HOST, ISSUER, ingress_text, load

CFG = config.from_text(minimal("""\
  registry:
    deleteEnabled: true
    gc: {schedule: "0 3 * * 0"}
    retention: {rules: [{repositories: [builds/], keepNewest: 3}]}
  writers:
    - {serviceAccount: builds/kaniko, delete: true}
    - {serviceAccount: team-a/builder, repositories: [team-a/]}
  pushProxy: {repositories: [dev/]}
"""), name="m.yaml")
UPLOAD = "/v2/builds/app/blobs/uploads/c6b969d9-518d-4aff?_state=XC0j_0yG9L"


def one(**changes):
    record = parse_line(line(**changes))
    return event(record, identify(record, CFG, CFG.registry), proxy="registry sidecar")


@pytest.mark.parametrize(("path", "route", "repository", "reference"), [
    ("/v2/builds/app/manifests/v1", "manifest", "builds/app", "v1"),
    ("/v2/builds%2Fapp/manifests/v1", "manifest", "builds/app", "v1"),  # the registry decodes %2F
    ("/v2/builds%2fapp/blobs/uploads/", "upload", "builds/app", ""),
    ("/v2/a/b/c/blobs/" + DIGEST, "blob", "a/b/c", DIGEST),
    ("/v2/team-a/..%2Fteam-b%2Fapp/blobs/uploads/", "redirect", "team-b/app", ""),  # cleaned, redirected
    ("/v2/a//b/manifests/v1", "redirect", "a/b", "v1"),
    ("/v2/_catalog", "catalog", None, None),
    ("/v2/", "base", None, None),
    ("/v3/whatever", "other", None, None),
])
def test_the_repository_is_the_one_the_registry_acts_on(path, route, repository, reference):
    where = target(path)
    assert (where.route, where.repository, where.reference) == (route, repository, reference)


def test_a_manifest_push_names_the_tag_and_the_registrys_digest():
    e = one()
    assert (e.action, e.repository, e.target.tag, e.digest) == ("push", "builds/app", "v1", DIGEST)
    assert e.who.name == "builds/kaniko" and e.who.kind == "workload"


def test_a_push_through_an_encoded_slash_is_recorded_in_the_repository_written():
    e = one(path="/v2/builds%2Fapp/manifests/v2")
    assert (e.action, e.repository, e.target.tag) == ("push", "builds/app", "v2")
    assert e.path == "/v2/builds%2Fapp/manifests/v2"  # and the path as forwarded, for the record


def test_a_completed_blob_upload_takes_the_digest_of_the_registrys_answer_or_of_the_request():
    assert one(path=UPLOAD + "&digest=sha256%3Aab", digest=None).digest == "sha256:ab"
    e = one(path=UPLOAD + "&digest=sha256%3Aab")
    assert (e.action, e.repository, e.digest) == ("blob", "builds/app", DIGEST)


@pytest.mark.parametrize(("method", "path", "code", "action"), [
    ("POST", "/v2/builds/app/blobs/uploads/", 202, "upload"),
    ("PATCH", UPLOAD, 202, "upload"),
    ("POST", f"/v2/builds/app/blobs/uploads/?mount={DIGEST}&from=team-a/base", 201, "mount"),
    ("POST", f"/v2/builds/app/blobs/uploads/?mount={DIGEST}&from=team-a/base", 202, "upload"),  # mount declined
    ("DELETE", f"/v2/builds/app/manifests/{DIGEST}", 202, "delete"),
    ("DELETE", f"/v2/builds/app/blobs/{DIGEST}", 202, "delete"),
    ("PUT", "/v2/builds/app/manifests/v1", 400, "failed"),
    ("POST", "/v2/team-a/..%2Fteam-b%2Fapp/blobs/uploads/", 301, "redirected"),
    ("GET", "/v2/builds/app/manifests/v1", 403, "refused"),
    ("POST", "/v2/builds/app/blobs/uploads/", 401, "refused"),
])
def test_each_request_gets_its_action(method, path, code, action):
    assert one(method=method, path=path, code=code, digest=None).action == action


def test_a_mount_names_the_repository_it_read_from():
    e = one(method="POST", path=f"/v2/builds/app/blobs/uploads/?mount={DIGEST}&from=team-a/base", digest=None)
    assert (e.action, e.digest, e.mounted_from) == ("mount", DIGEST, "team-a/base")


def test_a_delete_names_the_manifest_digest():
    e = one(method="DELETE", path=f"/v2/builds/app/manifests/{DIGEST}", code=202, digest=None)
    assert (e.action, e.repository, e.digest) == ("delete", "builds/app", DIGEST)


def test_a_refusal_names_the_policy_and_rule_that_denied():
    e = one(method="POST", path="/v2/team-b%2Fapp/blobs/uploads/", code=403, digest=None,
            details="rbac_access_denied_matched_policy[ns[meshreg]-policy[registry-deny-writes]-rule[1]]",
            peer="spiffe://cluster.local/ns/team-a/sa/builder")
    assert (e.action, e.repository, e.why, e.who.name) == ("refused", "team-b/app", "meshreg/registry-deny-writes "
                                                                                    "rule 1", "team-a/builder")


@pytest.mark.parametrize(("details", "why"), [
    ("rbac_access_denied_matched_policy[none]", "no ALLOW rule matched"),
    ("jwt_authn_access_denied{Jwt_is_expired}", "jwt_authn_access_denied{Jwt_is_expired}"),
    ("rbac_access_denied_matched_policy[ns[x]-policy[y-z]-rule[12]]", "x/y-z rule 12"),
    (None, None),
])
def test_refusals_say_who_refused(details, why):
    assert refused_by(details) == why


def test_a_redirect_says_the_registry_wrote_nothing():
    e = one(method="POST", path="/v2/team-a/..%2Fteam-b%2Fapp/blobs/uploads/", code=301, digest=None)
    assert e.why == "the registry redirected it to /v2/team-b/app/blobs/uploads/ and wrote nothing"


@pytest.mark.parametrize(("peer", "kind", "name", "alias"), [
    ("spiffe://cluster.local/ns/meshreg-push/sa/push-proxy", "push-proxy", "push proxy (meshreg-push/push-proxy)",
     "push-proxy"),
    ("spiffe://cluster.local/ns/meshreg/sa/node-proxy", "node-proxy", "node proxy (meshreg/node-proxy)",
     "meshreg/node-proxy"),
    ("spiffe://cluster.local/ns/meshreg/sa/registry-gc", "retention", "retention job (meshreg/registry-gc)",
     "retention"),
    ("spiffe://other.domain/ns/builds/sa/kaniko", "workload", "other.domain/ns/builds/sa/kaniko",
     "spiffe://other.domain/ns/builds/sa/kaniko"),
])
def test_identities_meshreg_deploys_are_named_for_their_role(peer, kind, name, alias):
    who = one(peer=peer).who
    assert (who.kind, who.name) == (kind, name) and who.answers_to(alias)


def test_the_waypoints_peer_principal_wins_over_the_tls_peer_of_its_internal_listener():
    who = one(peer=None, peer_principal="spiffe://cluster.local/ns/team-a/sa/builder").who
    assert who.name == "team-a/builder"


def test_without_a_verified_peer_the_request_is_anonymous_whatever_the_client_says():
    who = one(peer=None, user_agent="kaniko/1.23 (builds/kaniko)").who
    assert (who.kind, who.name) == ("anonymous", "anonymous (no verified identity)")


def test_ingress_clients_are_named_by_their_certificate_or_their_token(tmp_path):
    cfg = load(tmp_path, ingress_text(clients=CLIENTS))

    def who(**changes):
        record = parse_line(line(**changes))
        return identify(record, cfg, cfg.registry)

    assert who(peer=f"spiffe://{HOST}/client/loader").name == "client loader"
    assert who(peer=f"spiffe://{HOST}/client/loader").answers_to("client:loader")
    token = who(peer=None, jwt_issuer=GITHUB, jwt_subject="repo:acme/app:ref:refs/heads/main")
    assert token.name == f"client app-ci (token {GITHUB}/repo:acme/app:ref:refs/heads/main)"
    assert token.answers_to("client:app-ci") and token.kind == "client"
    stranger = who(peer=None, jwt_issuer=ISSUER, jwt_subject="someone-else")
    assert (stranger.kind, stranger.name) == ("token", f"token {ISSUER}/someone-else")
    assert who(peer="spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account").kind == \
        "ingress-gateway"


def _gateway_and_registry(cfg, client_peer: str, request_id: str, **changes):
    gateway = parse_line(line(peer=client_peer, request_id=request_id, **changes))
    registry = parse_line(line(peer="spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
                               request_id=request_id, **changes))
    return gateway, registry


def test_an_ingress_write_is_told_once_with_the_client_the_gateway_verified(tmp_path):
    cfg = load(tmp_path, ingress_text(clients=CLIENTS))
    gateway, registry = _gateway_and_registry(cfg, f"spiffe://{HOST}/client/loader", "r-1",
                                              path="/v2/images/app/manifests/v1")
    orphan = parse_line(line(peer="spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
                             request_id="r-2", path="/v2/images/other/manifests/v1"))
    events = trail([("ingress gateway", [gateway]), ("registry sidecar", [registry, orphan])], cfg=cfg,
                   registry=cfg.registry)
    assert [(e.who.name, e.proxy, e.repository) for e in events] == [
        ("client loader", "ingress gateway", "images/app"),
        ("ingress gateway (istio-system/istio-ingressgateway-service-account)", "registry sidecar", "images/other")]


def test_a_reused_request_id_never_merges_two_clients(tmp_path):
    cfg = load(tmp_path, ingress_text(clients=CLIENTS))
    a, registry = _gateway_and_registry(cfg, f"spiffe://{HOST}/client/loader", "same")
    b = parse_line(line(peer=f"spiffe://{HOST}/client/team-a-ci", request_id="same"))
    events = trail([("ingress gateway", [a, b]), ("registry sidecar", [registry])], cfg=cfg, registry=cfg.registry)
    assert len(events) == 3  # ambiguous: the registry's record stays on its own


def test_the_query_keeps_a_repository_prefix_an_identity_and_a_time():
    records = [parse_line(line(path="/v2/team-a/app/manifests/v1", time="2026-12-06T06:00:00Z")),
               parse_line(line(path="/v2/team-a%2Fdb/manifests/v1", time="2026-12-06T07:00:00Z",
                               peer="spiffe://cluster.local/ns/team-a/sa/builder")),
               parse_line(line(path="/v2/team-ab/app/manifests/v1", time="2026-12-06T08:00:00Z")),
               parse_line(line(method="POST", path=f"/v2/builds/x/blobs/uploads/?mount={DIGEST}&from=team-a/app",
                               time="2026-12-06T09:00:00Z"))]

    def kept(**query):
        return [e.time.hour for e in trail([("registry sidecar", records)], cfg=CFG, registry=CFG.registry,
                                           query=Query(**query))]

    assert kept(repository="team-a") == [6, 7, 9]  # team-a/ covers team-a/..., not team-ab; a mount from it counts
    assert kept(repository="team-a/app/") == [6, 9]
    assert kept(who="team-a/builder") == [7]
    assert kept(who="spiffe://cluster.local/ns/builds/sa/kaniko") == [6, 8, 9]
    assert kept(since=parse_line(line(time="2026-12-06T07:30:00Z")).time) == [8, 9]
