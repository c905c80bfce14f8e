"""The audit trail on real parts. A real Envoy, configured as istiod configures it from the rendered Telemetry objects
and the provider `meshreg audit --mesh-config` prints (tests/support/lab/telemetry.py), writes real access logs for
real pushes to a real registry (skopeo, and raw requests for what skopeo never sends): a writer, a scoped writer, a
bystander, the push proxy, and ingress clients with a certificate and a token. `meshreg audit` then reads those logs
as the kubelet hands them out (each line after its time) and must name who wrote which tag and digest, who was
refused by which policy, and the repository the registry acted on when the path hid a slash or climbed out."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timezone
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from meshreg.audit import MARKER, provider, schema
from meshreg.cli import main
from support import fakes, ingress_cases
from support.e2e_cases import FORGED_XFCC, NON_WRITER, SCOPED, WRITER
from support.lab import images
from support.lab.clients import manifest_digest, mtls_client, raw_request, skopeo_copy
from support.lab.ingress import GATEWAY, IngressLab
from support.lab.mesh import SIDECAR, Lab
from support.push_cases import WITH_PUSH_PROXY

GATEWAY_LABELS = {"istio": "ingressgateway"}
FORGED_ADDRESS = "203.0.113.7"


@pytest.fixture(scope="module")
def audit_lab(real_parts, tmp_path_factory) -> Iterator[Lab]:
    with closing(Lab(WITH_PUSH_PROXY, tmp_path_factory.mktemp("audit"))) as lab:
        yield lab


@pytest.fixture(scope="module")
def ingress_lab(real_parts, tmp_path_factory) -> Iterator[IngressLab]:
    """A dedicated ingress gateway, so it keeps audit records of its clients."""
    def setup(lab: IngressLab) -> None:
        lab.certs = {"loader": lab.issue("loader")}

    text = ingress_cases.config_text(dedicated=True)
    with closing(IngressLab(text, tmp_path_factory.mktemp("audit-ingress"), setup=setup)) as lab:
        yield lab


def registry_labels(lab: Lab) -> dict[str, str]:
    [deployment] = [o for o in lab.objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "registry"]
    return deployment["spec"]["template"]["metadata"]["labels"]


def kubelet(text: str) -> str:
    """A container log as `kubectl logs --timestamps` hands it out."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return "".join(f"{now} {line}\n" for line in text.splitlines())


def audit_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{") and MARKER in line]


def wait_for(lab: Lab, proxy: str, count: int) -> str:
    """The proxy's log once it holds at least `count` audit lines and has stopped growing (Envoy flushes every
    100 ms)."""
    deadline, last, since = time.monotonic() + 10, None, time.monotonic()
    while time.monotonic() < deadline:
        text = lab.proxy_log(proxy)
        if text != last:
            last, since = text, time.monotonic()
        elif len(audit_lines(text)) >= count and time.monotonic() - since > 0.5:
            return text
        time.sleep(0.1)
    return lab.proxy_log(proxy)


def meshreg_audit(lab: Lab, monkeypatch: pytest.MonkeyPatch, *args: str,
                  gateway: bool = False) -> dict[str, Any]:
    """`meshreg audit -o json` on the lab's config, the API server standing in for the kubelet: the deployed objects,
    a mesh config with the audit provider, the proxies' pods, and their logs as the lab's Envoy wrote them."""
    cluster = fakes.FakeCluster()
    for obj in lab.objects:
        cluster.put(obj)
    mesh = {**yaml.safe_load(fakes.MESH["data"]["mesh"]), "trustDomain": lab.cfg.trust_domain,
            "extensionProviders": [provider(lab.cfg.audit.provider)]}
    cluster.put({**fakes.MESH, "data": {"mesh": yaml.safe_dump(mesh)}})
    pods = [(lab.cfg.namespace, "registry-0", registry_labels(lab), SIDECAR)]
    if gateway:
        pods.append((lab.cfg.ingress.gateway.namespace, "gateway-0", GATEWAY_LABELS, GATEWAY))
    for ns, name, labels, proxy in pods:
        cluster.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
                     "status": {"containerStatuses": [{"name": "istio-proxy", "restartCount": 0}]}})
        cluster.logs[(ns, name, "istio-proxy")] = kubelet(lab.proxy_log(proxy))
    fakes.route(monkeypatch, cluster)
    result = CliRunner().invoke(main, ["audit", "-c", str(lab.config_file), "-o", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def events(data: dict[str, Any], *actions: str) -> list[tuple[Any, ...]]:
    return [(e["action"], e["who"]["name"], e["repository"], e["tag"], e["digest"], e["why"])
            for e in data["events"] if not actions or e["action"] in actions]


@pytest.fixture(scope="module")
def pushed(audit_lab: Lab, tmp_path_factory) -> dict[str, Any]:
    """Everything the sidecar lab's clients did, once: what each was meant to show."""
    lab = audit_lab
    image = images.build(tmp_path_factory.mktemp("audit-image") / "layout", layer_sizes=(2048,))
    done: dict[str, Any] = {"image": image}
    done["writer"] = skopeo_copy(image.ref, f"docker://{lab.sidecar}/builds/app:v1", dest_ident=lab.identity(WRITER))
    done["scoped"] = skopeo_copy(image.ref, f"docker://{lab.sidecar}/team-a/app:v1", dest_ident=lab.identity(SCOPED))
    done["scoped-out"] = skopeo_copy(image.ref, f"docker://{lab.sidecar}/team-b/app:v1",
                                     dest_ident=lab.identity(SCOPED))
    done["push-proxy"] = skopeo_copy(image.ref, f"docker://{lab.push_proxy}/dev/app:v1")
    done["push-proxy-out"] = skopeo_copy(image.ref, f"docker://{lab.push_proxy}/open/app:v1")
    layer = json.loads(image.manifest)["layers"][0]["digest"]
    config = json.loads(image.manifest)["config"]["digest"]
    with mtls_client(lab.sidecar, lab.identity(WRITER), ca=lab.ca.ca_file) as writer:
        # a manifest pushed through a path that hides a slash: the registry writes builds/hidden
        for blob in (layer, config):
            raw_request(writer, "POST", f"/v2/builds%2Fhidden/blobs/uploads/?mount={blob}&from=builds/app")
        done["hidden"] = raw_request(writer, "PUT", "/v2/builds%2Fhidden/manifests/v1", content=image.manifest,
                                     headers={"Content-Type": images.MANIFEST})
        done["delete"] = raw_request(writer, "DELETE", f"/v2/team-a/app/manifests/{image.digest}")
    with mtls_client(lab.sidecar, lab.identity(SCOPED), ca=lab.ca.ca_file) as scoped:
        done["climb"] = raw_request(scoped, "POST", "/v2/team-a/..%2Fteam-b%2Fapp/blobs/uploads/")
    with mtls_client(lab.sidecar, lab.identity(NON_WRITER), ca=lab.ca.ca_file) as bystander:
        done["forged"] = raw_request(bystander, "POST", "/v2/open/app/blobs/uploads/",
                                     headers={**FORGED_XFCC, "x-forwarded-for": FORGED_ADDRESS})
    done["log"] = wait_for(lab, SIDECAR, 12)
    return done


def test_the_clients_did_what_each_case_needs(pushed, audit_lab):
    assert pushed["writer"].returncode == 0 and pushed["scoped"].returncode == 0
    assert pushed["push-proxy"].returncode == 0, pushed["push-proxy"].stderr
    for refused in ("scoped-out", "push-proxy-out"):
        assert pushed[refused].returncode != 0 and "403" in pushed[refused].stderr
    assert pushed["hidden"].status_code == 201 and pushed["delete"].status_code == 202
    assert (pushed["climb"].status_code, pushed["forged"].status_code) == (301, 403)
    assert manifest_digest(audit_lab.direct, "builds/hidden", "v1") == pushed["image"].digest


def test_every_audit_line_envoy_wrote_meets_the_schema(pushed):
    lines = audit_lines(pushed["log"])
    assert len(lines) >= 12
    for line in lines:
        jsonschema.validate(line, schema(), format_checker=jsonschema.FormatChecker())
    assert all(line["method"] not in ("GET", "HEAD") or line["code"] == 403 for line in lines)  # the filter held
    text = [line for line in pushed["log"].splitlines() if line.startswith("[")]
    assert any('"GET /v2/' in line for line in text)  # the `envoy` provider kept logging everything beside it


def test_pushes_name_the_verified_writer_the_tag_and_the_registrys_digest(pushed, audit_lab, monkeypatch):
    data = meshreg_audit(audit_lab, monkeypatch)
    digest = pushed["image"].digest
    pushes = events(data, "push")
    assert ("push", WRITER, "builds/app", "v1", digest, None) in pushes
    assert ("push", SCOPED, "team-a/app", "v1", digest, None) in pushes
    assert ("push", "push proxy (registry-push/push-proxy)", "dev/app", "v1", digest, None) in pushes
    principals = {e["who"]["principal"] for e in data["events"]}
    assert f"{audit_lab.cfg.trust_domain}/ns/builds/sa/kaniko" in principals
    assert data["ok"] and data["sources"][0]["records"] == len(audit_lines(pushed["log"]))


def test_a_push_through_a_hidden_slash_is_recorded_in_the_repository_the_registry_wrote(pushed, audit_lab,
                                                                                         monkeypatch):
    data = meshreg_audit(audit_lab, monkeypatch)
    [hidden] = [e for e in data["events"] if e["action"] == "push" and e["path"].startswith("/v2/builds%2F")]
    assert (hidden["repository"], hidden["tag"], hidden["digest"]) == ("builds/hidden", "v1", pushed["image"].digest)
    assert hidden["path"] == "/v2/builds%2Fhidden/manifests/v1"
    mounts = {(e["repository"], e["mountedFrom"]) for e in data["events"] if e["action"] == "mount"}
    assert ("builds/hidden", "builds/app") in mounts
    # skopeo mounts the blobs it pushed before: a scoped writer reads builds/app through a mount into its prefix,
    # which no path rule can see (docs/security.md) and the trail shows
    assert ("team-a/app", "builds/app") in mounts


def deny_rule(lab: Lab, identity: str) -> str:
    """The rendered DENY rule that stops `identity` writing outside its scope (for a non-writer: the first)."""
    [policy] = [o for o in lab.objects if o["metadata"]["name"] == "registry-deny-writes"]
    principal = lab.cfg.principal(identity)
    for i, rule in enumerate(policy["spec"]["rules"]):
        sources = [f["source"] for f in rule.get("from", [])]
        if any(principal in s.get("principals", []) for s in sources):
            return f"{lab.cfg.namespace}/registry-deny-writes rule {i}"
    return f"{lab.cfg.namespace}/registry-deny-writes rule 0"


def test_refusals_name_the_policy_rule_and_the_verified_identity_not_the_forged_header(pushed, audit_lab,
                                                                                       monkeypatch):
    refused = events(meshreg_audit(audit_lab, monkeypatch), "refused")
    assert ("refused", SCOPED, "team-b/app", None, None, deny_rule(audit_lab, SCOPED)) in refused
    assert ("refused", NON_WRITER, "open/app", None, None, deny_rule(audit_lab, NON_WRITER)) in refused  # not XFCC's
    assert ("refused", "push proxy (registry-push/push-proxy)", "open/app", None, None,
            deny_rule(audit_lab, "registry-push/push-proxy")) in refused
    assert deny_rule(audit_lab, SCOPED) != deny_rule(audit_lab, NON_WRITER)


def test_the_source_address_is_the_connections_peer_whatever_x_forwarded_for_says(pushed, audit_lab, monkeypatch):
    data = meshreg_audit(audit_lab, monkeypatch, "--who", NON_WRITER)
    assert {e["sourceAddress"].rsplit(":", 1)[0] for e in data["events"]} == {"127.0.0.1"}
    [line] = [x for x in audit_lines(pushed["log"]) if x["peer"].endswith("/sa/web")]
    assert line["client_address"].startswith(FORGED_ADDRESS)  # what the header said: informational only


def test_a_path_that_climbs_out_is_recorded_as_sent_and_as_nothing_written(pushed, audit_lab, monkeypatch):
    data = meshreg_audit(audit_lab, monkeypatch)
    [climb] = [e for e in data["events"] if e["action"] == "redirected"]
    assert climb["path"] == "/v2/team-a/..%2Fteam-b%2Fapp/blobs/uploads/" and climb["who"]["name"] == SCOPED
    assert climb["why"] == "the registry redirected it to /v2/team-b/app/blobs/uploads/ and wrote nothing"
    assert "team-b/app" not in audit_lab.repositories()


def test_a_delete_names_the_manifest_digest(pushed, audit_lab, monkeypatch):
    deletes = events(meshreg_audit(audit_lab, monkeypatch), "delete")
    assert deletes == [("delete", WRITER, "team-a/app", None, pushed["image"].digest, None)]


def test_the_filters_pick_the_writers_and_repositories_asked_for(pushed, audit_lab, monkeypatch):
    by_proxy = meshreg_audit(audit_lab, monkeypatch, "--who", "push-proxy")
    assert {e["who"]["kind"] for e in by_proxy["events"]} == {"push-proxy"}
    team_b = meshreg_audit(audit_lab, monkeypatch, "--repo", "team-b")
    assert {(e["action"], e["repository"]) for e in team_b["events"]} >= {("refused", "team-b/app"),
                                                                          ("redirected", "team-b/app")}
    assert all(e["repository"] == "team-b/app" for e in team_b["events"])


@pytest.fixture(scope="module")
def ingress_pushes(ingress_lab: IngressLab, tmp_path_factory) -> dict[str, Any]:
    lab = ingress_lab
    image = images.build(tmp_path_factory.mktemp("audit-ingress-image") / "layout", layer_sizes=(2048,))
    done: dict[str, Any] = {"image": image}
    done["cert"] = ingress_cases.push(lab, image, "images/app", cert_dir=lab.certs["loader"])
    done["cert-out"] = ingress_cases.push(lab, image, "ci/by-loader", cert_dir=lab.certs["loader"])
    done["token"] = ingress_cases.push(lab, image, "ci/app", bearer=ingress_cases.token())
    done["stranger"] = ingress_cases.push(lab, image, "ci/other", bearer=ingress_cases.token("someone-else"))
    # expired beyond jwt_authn's default clock skew (60 s)
    done["expired"] = ingress_cases.push(lab, image, "ci/late", bearer=ingress_cases.token(lifetime=-600))
    done["gateway-log"] = wait_for(lab, GATEWAY, 6)
    done["sidecar-log"] = wait_for(lab, SIDECAR, 4)
    return done


def test_ingress_pushes_happened_as_each_case_needs(ingress_pushes, ingress_lab):
    assert ingress_pushes["cert"].returncode == 0 and ingress_pushes["token"].returncode == 0
    for refused in ("cert-out", "stranger", "expired"):
        assert ingress_pushes[refused].returncode != 0
    for line in audit_lines(ingress_pushes["gateway-log"]):
        jsonschema.validate(line, schema(), format_checker=jsonschema.FormatChecker())


def test_ingress_clients_are_named_by_their_certificate_or_their_verified_token(ingress_pushes, ingress_lab,
                                                                                monkeypatch):
    data = meshreg_audit(ingress_lab, monkeypatch, gateway=True)
    digest = ingress_pushes["image"].digest
    pushes = [(e["who"]["name"], e["proxy"], e["repository"], e["tag"], e["digest"]) for e in data["events"]
              if e["action"] == "push"]
    assert pushes == [("client loader", "ingress gateway", "images/app", "v1", digest),
                      (f"client ci (token {ingress_cases.ISSUER}/ci-bot)", "ingress gateway", "ci/app", "v1",
                       digest)]  # each push once: the registry sidecar's copies (the gateway's identity) folded
    assert not [e for e in data["events"] if e["who"]["kind"] == "ingress-gateway"]


def test_ingress_refusals_name_the_gateways_policy_or_the_token_check(ingress_pushes, ingress_lab, monkeypatch):
    data = meshreg_audit(ingress_lab, monkeypatch, gateway=True)
    refused = {(e["who"]["name"], e["repository"], e["why"]) for e in data["events"] if e["action"] == "refused"}
    gw = ingress_lab.cfg.ingress.gateway.namespace
    policy = f"{gw}/meshreg-{ingress_lab.cfg.name}-ingress-deny"
    assert any(who == "client loader" and repo == "ci/by-loader" and why.startswith(policy + " rule ")
               for who, repo, why in refused)
    assert any(who == f"token {ingress_cases.ISSUER}/someone-else" and repo == "ci/other" and why.startswith(policy)
               for who, repo, why in refused)
    assert ("anonymous (no verified identity)", "ci/late", "jwt_authn_access_denied{Jwt_is_expired}") in refused
    assert "ci/by-loader" not in ingress_lab.repositories()


def test_the_gateway_logs_only_its_host_and_never_the_token_challenge(ingress_pushes, ingress_lab):
    with httpx.Client(base_url=f"https://{ingress_lab.ingress}", verify=False, timeout=10) as c:
        assert c.get("/v2/").status_code == 401  # the ping: a read, not refused by a policy: not an audit record
    lines = audit_lines(wait_for(ingress_lab, GATEWAY, 1))
    assert lines and all(line["authority"].startswith("localhost") for line in lines)
    assert not [line for line in lines if line["method"] == "GET" and line["code"] == 401]
