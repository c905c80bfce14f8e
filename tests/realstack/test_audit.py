"""The audit trail on the real stack: the real istiod (Istio 1.14) turns the rendered Telemetry and the audit provider
added to its mesh config into the real sidecar's access log; curl in real pods with real sidecars pushes and is
refused; the push proxy writes for skopeo on this host through `meshreg connect`; a dedicated ingress gateway logs a
client certificate's pushes; the registry's sidecar is restarted half-way. `meshreg audit` reads it all through the
API server and must say who wrote which tag and digest, who was refused by which rule, what the registry did with a
path that hid a slash or climbed out, and how far back each proxy's log reaches.

Names and ports of this module: namespaces `au-*`, node proxy 5300, push proxy 5301, ingress gateway 5343."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshreg.audit import FIELDS, MARKER, schema
from meshreg.render.audit import WRITES_AND_REFUSALS
from support.lab import images
from support.paths import ROOT
from support.realstack_audit import DATA, audit_provider, meshreg, volume

NAMESPACE, BUILDS, APPS = "au-reg", "au-builds", "au-apps"
KANIKO, TEAM_A, WEB = f"{BUILDS}/kaniko", f"{BUILDS}/team-a", f"{APPS}/web"
CONNECT_PORT = 5301
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: au-reg}}
spec:
  namespace: {NAMESPACE}
  nodeProxy: {{port: 5300}}
  localRegistryHosting: {{publish: false}}
  registry: {{deleteEnabled: true}}
  writers:
    - {{serviceAccount: {KANIKO}, delete: true}}
    - {{serviceAccount: {TEAM_A}, repositories: [team-a/]}}
  pushProxy: {{repositories: [dev/], port: {CONNECT_PORT}}}
"""
BASE = f"http://registry.{NAMESPACE}.svc.cluster.local:5000"
# Push a one-layer OCI image with curl, as a registry client does: print "manifest DIGEST STATUS REGISTRY-DIGEST"
# (STATUS is the refusal's code and the digests "-" when the first upload is refused).
PUSH = r"""
set -e
B=$1; R=$2; T=$3; W=$(mktemp -d); cd $W
head -c 2048 /dev/urandom > layer
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > config
blob() {
  d=sha256:$(sha256sum $1 | cut -d' ' -f1)
  out=$(curl -s -o /dev/null -w '%{http_code} %header{location}' -X POST "$B/v2/$R/blobs/uploads/")
  loc=${out#* }
  [ "${out%% *}" = 202 ] || { echo "refused ${out%% *}"; return; }
  case "$loc" in http*) ;; *) loc="$B$loc" ;; esac
  curl -s -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary @$1 "$loc&digest=$d"
  echo $d
}
ld=$(blob layer)
case "$ld" in refused*) echo "manifest - ${ld#refused } -"; exit 0 ;; esac
cd_=$(blob config)
F='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
F=$F'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},'
F=$F'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}'
printf "$F" $cd_ $(wc -c < config) $ld $(wc -c < layer) > manifest
md=sha256:$(sha256sum manifest | cut -d' ' -f1)
echo "manifest $md $(curl -s -o /dev/null -w '%{http_code} %header{docker-content-digest}' -X PUT \
  -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @manifest "$B/v2/$R/manifests/$T")"
"""


def client_pods(stack: Any) -> list[dict]:
    """An injected namespace per team, a ServiceAccount and a curl pod (with its sidecar) per identity."""
    out: list[dict] = []
    for ns in (BUILDS, APPS):
        out.append({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"istio-injection": "enabled"}}})
    for who in (KANIKO, TEAM_A, WEB):
        ns, sa = who.split("/")
        out.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}})
        out.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{sa}-client", "namespace": ns},
                    "spec": {"serviceAccountName": sa, "terminationGracePeriodSeconds": 1, "containers": [
                        {"name": "c", "image": stack.curl_image, "imagePullPolicy": "IfNotPresent",
                         "command": ["sleep", "3600"]}]}})
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audit-realstack")


@pytest.fixture(scope="module")
def deployed(stack, workdir) -> Iterator[Path]:
    """The audit provider in the mesh config, meshreg up, and the client pods; all removed afterwards."""
    (workdir / "meshreg.yaml").write_text(CONFIG)
    with audit_provider(stack):
        try:
            stack.apply(volume(stack, "au-reg-registry-data", NAMESPACE, "registry-data"), *client_pods(stack))
            meshreg("up", "--timeout", "180", stack=stack, cwd=workdir)
            for who in (KANIKO, TEAM_A, WEB):
                ns, sa = who.split("/")
                stack.kubectl("-n", ns, "wait", "--for=condition=Ready", f"pod/{sa}-client", "--timeout=120s")
            yield workdir
        finally:
            meshreg("down", "--purge", "--yes", stack=stack, cwd=workdir, check=False)
            stack.kubectl("delete", "namespace", BUILDS, APPS, "--ignore-not-found", "--wait=false", check=False)
            stack.kubectl("delete", "persistentvolume", "au-reg-registry-data", "--ignore-not-found", check=False)
            shutil.rmtree(DATA / "au-reg-registry-data", ignore_errors=True)


def curl_push(stack: Any, who: str, repository: str, tag: str = "v1") -> tuple[str, str, str]:
    """(manifest digest, status, the registry's Docker-Content-Digest) of a push from `who`'s pod."""
    ns, sa = who.split("/")
    done = stack.kubectl("-n", ns, "exec", "-i", f"{sa}-client", "-c", "c", "--", "sh", "-s", "--", BASE,
                         repository, tag, stdin=PUSH)
    line = done.stdout.strip().splitlines()[-1].split()
    assert line[0] == "manifest", done.stdout + done.stderr
    return line[1], line[2], line[3] if len(line) > 3 else "-"


def curl(stack: Any, who: str, method: str, path: str, *headers: str) -> int:
    ns, sa = who.split("/")
    args = [arg for h in headers for arg in ("-H", h)]
    done = stack.kubectl("-n", ns, "exec", f"{sa}-client", "-c", "c", "--", "curl", "-s", "--path-as-is", "-o",
                         "/dev/null", "-w", "%{http_code}", "-X", method, *args, BASE + path)
    return int(done.stdout)


def registry_pod(stack: Any) -> dict:
    [pod] = json.loads(stack.kubectl("-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/name=registry",
                                     "-o", "json").stdout)["items"]
    return pod


def restart_sidecar(stack: Any) -> None:
    """Stop the registry pod's istio-proxy (pilot-agent drains and exits) and wait for the kubelet's restart."""
    name = registry_pod(stack)["metadata"]["name"]
    stack.kubectl("-n", NAMESPACE, "exec", name, "-c", "istio-proxy", "--", "kill", "-TERM", "1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        statuses = registry_pod(stack)["status"].get("containerStatuses", [])
        proxy = next(c for c in statuses if c["name"] == "istio-proxy")
        if proxy.get("restartCount") and proxy.get("ready"):
            return
        time.sleep(2)
    raise AssertionError("the registry's istio-proxy did not come back")


def skopeo_push(image: images.Image, repository: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", "--retry-times", "0",
                           "--preserve-digests", image.ref, f"docker://localhost:{CONNECT_PORT}/{repository}:v1"],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def actions(stack, deployed, workdir) -> dict[str, Any]:
    """Everything the clients did, once, in this order: pushes and refusals, the push proxy, a restart of the
    registry's sidecar, one more push and a delete after it."""
    done: dict[str, Any] = {"writer": curl_push(stack, KANIKO, "builds/app"),
                            "hidden": curl_push(stack, KANIKO, "builds%2Fhidden"),
                            "scoped": curl_push(stack, TEAM_A, "team-a/app"),
                            "scoped-out": curl_push(stack, TEAM_A, "team-b/app"),
                            "climb": curl(stack, TEAM_A, "POST", "/v2/team-a/..%2Fteam-b%2Fapp/blobs/uploads/"),
                            "forged": curl(stack, WEB, "POST", "/v2/open/app/blobs/uploads/",
                                           f"x-forwarded-client-cert: URI=spiffe://cluster.local/ns/{BUILDS}/sa/kaniko",
                                           "x-forwarded-for: 203.0.113.7")}
    image = images.build(workdir / "image", layer_sizes=(4096,))
    connect = subprocess.Popen([sys.executable, "-m", "meshreg", "connect"], cwd=workdir, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=stack.env(PYTHONPATH=str(ROOT)))
    try:
        assert connect.stdout is not None
        lines = [connect.stdout.readline() for _ in range(3)]
        assert any(line.startswith("forwarding ") for line in lines), lines
        done["proxy"], done["proxy-out"] = skopeo_push(image, "dev/app"), skopeo_push(image, "open/app")
    finally:
        connect.terminate()
        connect.wait(30)
    done["image"] = image
    restart_sidecar(stack)
    done["after"] = curl_push(stack, KANIKO, "builds/after")
    done["delete"] = curl(stack, KANIKO, "DELETE", f"/v2/builds/app/manifests/{done['writer'][0]}")
    time.sleep(2)  # the sidecar flushes its access log every second
    return done


def audit(stack: Any, workdir: Path, *args: str) -> dict[str, Any]:
    return json.loads(meshreg("audit", "-o", "json", *args, stack=stack, cwd=workdir).stdout)


def trail(data: dict[str, Any], action: str) -> list[tuple[Any, ...]]:
    return [(e["who"]["name"], e["repository"], e["tag"], e["digest"], e["why"]) for e in data["events"]
            if e["action"] == action]


def test_the_clients_did_what_each_case_needs(actions):
    assert actions["writer"][1] == actions["hidden"][1] == actions["scoped"][1] == actions["after"][1] == "201"
    assert actions["scoped-out"][1] == "403" and (actions["climb"], actions["forged"], actions["delete"]) == \
        (301, 403, 202)
    assert actions["proxy"].returncode == 0, actions["proxy"].stderr
    assert "403" in actions["proxy-out"].stderr


def test_istiod_builds_the_audit_log_from_the_telemetry_and_the_mesh_configs_provider(stack, actions):
    name = registry_pod(stack)["metadata"]["name"]
    dump = subprocess.run(["curl", "-s", f"http://127.0.0.1:15014/debug/config_dump?proxyID={name}.{NAMESPACE}"],
                          capture_output=True, text=True, timeout=30).stdout
    [listener] = [d["activeState"]["listener"] for c in json.loads(dump)["configs"]
                  for d in c.get("dynamicListeners", []) if d["name"] == "virtualInbound"]
    logs = [f["typedConfig"].get("accessLog") for fc in listener["filterChains"] for f in fc["filters"]
            if fc.get("name") == "virtualInbound-catchall-http" and "typedConfig" in f]
    [audit_log] = [log for found in logs if found for log in found
                   if "jsonFormat" in log["typedConfig"].get("logFormat", {})]
    assert audit_log["typedConfig"]["logFormat"]["jsonFormat"] == FIELDS
    assert audit_log["typedConfig"]["path"] == "/dev/stdout"
    assert audit_log["filter"]["extensionFilter"]["typedConfig"]["expression"] == WRITES_AND_REFUSALS


def test_the_real_sidecar_writes_lines_that_meet_the_schema(stack, actions):
    import jsonschema

    name = registry_pod(stack)["metadata"]["name"]
    text = "".join(stack.kubectl("-n", NAMESPACE, "logs", name, "-c", "istio-proxy", *flag).stdout
                   for flag in (["--previous"], []))
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{") and MARKER in line]
    assert len(lines) >= 20
    for line in lines:
        jsonschema.validate(line, schema(), format_checker=jsonschema.FormatChecker())
    assert {(line["pod"], line["namespace"]) for line in lines} == {(name, NAMESPACE)}


def test_meshreg_audit_names_each_writer_tag_and_the_registrys_digest(stack, workdir, actions):
    data = audit(stack, workdir)
    pushes = trail(data, "push")
    for who, repository, key in ((KANIKO, "builds/app", "writer"), (TEAM_A, "team-a/app", "scoped"),
                                 (KANIKO, "builds/after", "after")):
        assert (who, repository, "v1", actions[key][2], None) in pushes
    assert ("push proxy (au-reg-push/push-proxy)", "dev/app", "v1", actions["image"].digest, None) in pushes
    assert data["ok"] and data["recording"] is True


def test_a_push_through_a_hidden_slash_is_recorded_in_the_repository_the_registry_wrote(stack, workdir, actions):
    [hidden] = [e for e in audit(stack, workdir)["events"] if e["path"] == "/v2/builds%2Fhidden/manifests/v1"]
    assert (hidden["action"], hidden["repository"], hidden["digest"]) == ("push", "builds/hidden",
                                                                          actions["hidden"][2])


def test_refusals_name_the_rule_that_denied_and_the_identity_the_sidecar_verified(stack, workdir, actions):
    data = audit(stack, workdir)
    refused = trail(data, "refused")
    deny = f"{NAMESPACE}/registry-deny-writes"
    assert (TEAM_A, "team-b/app", None, None, f"{deny} rule 2") in refused  # rule 1 is the push proxy's scope
    assert (WEB, "open/app", None, None, f"{deny} rule 0") in refused  # not the writer its XFCC names
    assert ("push proxy (au-reg-push/push-proxy)", "open/app", None, None, f"{deny} rule 1") in refused
    web = [e for e in data["events"] if e["who"]["name"] == WEB]
    assert web and all(not e["sourceAddress"].startswith("203.0.113.7") for e in web)


def test_a_path_that_climbs_out_is_recorded_as_sent_and_as_nothing_written(stack, workdir, actions):
    [climb] = [e for e in audit(stack, workdir)["events"] if e["action"] == "redirected"]
    assert climb["path"] == "/v2/team-a/..%2Fteam-b%2Fapp/blobs/uploads/" and climb["who"]["name"] == TEAM_A
    assert climb["why"] == "the registry redirected it to /v2/team-b/app/blobs/uploads/ and wrote nothing"


def test_records_from_before_the_sidecar_restarted_come_from_its_previous_run(stack, workdir, actions):
    data = audit(stack, workdir)
    [source] = data["sources"]
    assert (source["restarts"], source["previousRead"], source["lostRuns"]) == (1, True, 0)
    assert source["oldest"] < source["started"]  # the first pushes were logged by the previous run
    deletes = trail(data, "delete")
    assert deletes == [(KANIKO, "builds/app", None, actions["writer"][0], None)]


def test_the_filters_narrow_the_trail(stack, workdir, actions):
    assert {e["who"]["name"] for e in audit(stack, workdir, "--who", TEAM_A)["events"]} == {TEAM_A}
    team_b = audit(stack, workdir, "--repo", "team-b/")["events"]
    assert team_b and {e["repository"] for e in team_b} == {"team-b/app"}
    assert audit(stack, workdir, "--since", "1s")["events"] == []


def test_doctor_finds_the_provider_and_says_so(stack, workdir, actions):
    found = json.loads(meshreg("doctor", "--check", "audit", "-o", "json", stack=stack, cwd=workdir).stdout)
    assert [(r["status"], r["message"]) for r in found["results"]] == [
        ("OK", "ConfigMap istio-system/istio defines extension provider meshreg-audit with meshreg's audit format")]


def test_mesh_config_prints_the_provider_the_stack_was_given(stack, workdir, actions):
    printed = yaml.safe_load(meshreg("audit", "--mesh-config", stack=stack, cwd=workdir).stdout)
    cm = json.loads(stack.kubectl("-n", "istio-system", "get", "configmap", "istio", "-o", "json").stdout)
    assert printed["extensionProviders"] == yaml.safe_load(cm["data"]["mesh"])["extensionProviders"]


def test_the_text_trail_names_its_source_and_how_far_back_it_reaches(stack, workdir, actions):
    text = meshreg("audit", stack=stack, cwd=workdir).stdout
    print(text)  # what docs/audit.md shows
    lines = text.splitlines()
    assert lines[0].startswith(f"meshreg audit: registry registry (namespace {NAMESPACE}) on https://")
    assert lines[1].split() == ["TIME", "ACTION", "WHO", "FROM", "WHAT"]
    name = registry_pod(stack)["metadata"]["name"]
    [source] = [line for line in lines if line.startswith(f"  registry sidecar {NAMESPACE}/{name}: ")]
    assert "restarted 1 time(s), the previous run's log was read" in source
    assert lines[-1].startswith("the trail reaches back to ")
