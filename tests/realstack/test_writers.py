"""Writers and readers in the cluster, on real pods with real sidecars and the policies istiod generated from what
meshreg rendered: who pushes, who reads, who is refused and by which policy (the registry sidecar's access log names
it), scoped writers inside and outside their prefixes, and path tricks, each judged by the real Envoy and by
`meshreg policy check`, which must agree."""

from __future__ import annotations

import pytest

from support import realstack
from support.realstack_pods import LogWatch, MeshPod

CONFIG = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: rs-writers}
spec:
  namespace: rs-writers
  nodeProxy: {port: 5101}
  localRegistryHosting: {publish: false}
  audit: {enabled: false}  # the tier reads the sidecars' default access log (see docs/realstack.md)
  registry: {deleteEnabled: true}
  readers: [rs-w-apps/reader]
  writers:
    - serviceAccount: rs-w-builds/kaniko
      delete: true
    - serviceAccount: rs-w-builds/team-a
      repositories: [team-a/]
"""
BASE = "http://registry.rs-writers.svc.cluster.local:5000"
KANIKO, TEAM_A, READER, BYSTANDER = ("rs-w-builds/kaniko", "rs-w-builds/team-a", "rs-w-apps/reader",
                                     "rs-w-apps/bystander")


@pytest.fixture(scope="module")
def instance(stack, workdir):
    with realstack.deployed(stack, workdir, CONFIG, accounts=(KANIKO, TEAM_A, READER, BYSTANDER)) as found:
        yield found


@pytest.fixture(scope="module")
def pods(stack, instance):
    """One client pod per identity (injected), and one without a sidecar."""
    made = {who: MeshPod(stack, who.split("/")[0], who.split("/")[1].replace("kaniko", "kaniko-client"),
                         service_account=who.split("/")[1]) for who in (KANIKO, TEAM_A, READER, BYSTANDER)}
    made["plain"] = MeshPod(stack, "rs-w-apps", "plain", sidecar=False)
    for pod in made.values():
        pod.start()
    yield made
    for pod in made.values():
        pod.stop()


@pytest.fixture
def log(stack, instance):
    """The registry sidecar's access log, from the start of the test on."""
    return LogWatch(stack, instance.namespace, instance.registry_pod())


@pytest.fixture(scope="module")
def pushed(pods):
    """What the unscoped writer pushed: (repository, digest)."""
    found = pods[KANIKO].probe(f"w push {BASE} apps/web")["w"]
    assert found["result"] == "ok", found
    return "apps/web", found["digest"]


def test_a_writer_pushes_and_the_registry_serves_what_it_pushed(pods, log):
    found = pods[KANIKO].probe(f"w push {BASE} apps/api")["w"]
    assert found["result"] == "ok" and found["digest"] == found["served"], found
    put = log.find(method="PUT", contains="/v2/apps/api/manifests/")
    assert put.code == 201 and put.details == "via_upstream", put.line


def test_a_bystander_cannot_push_and_the_deny_policy_is_named_in_the_sidecar_log(pods, log):
    found = pods[BYSTANDER].probe(f"b push {BASE} apps/bystander")["b"]
    assert (found["result"], found["status"], found["body"]) == ("http-error", 403, "RBAC: access denied")
    entry = log.find(method="POST", contains="/v2/apps/bystander/")
    assert entry.code == 403 and entry.policy == "registry-deny-writes", entry.line


def test_a_reader_pulls_what_a_writer_pushed(pods, pushed):
    repo, digest = pushed
    found = pods[READER].probe(f"r pull {BASE} {repo} {digest}")["r"]
    assert (found["result"], found["served"]) == ("ok", digest)


def test_a_reader_cannot_push(pods, log):
    found = pods[READER].probe(f"r push {BASE} apps/reader")["r"]
    assert found["status"] == 403
    entry = log.find(method="POST", contains="/v2/apps/reader/")
    assert entry.policy == "registry-deny-writes", entry.line


def test_who_is_no_reader_cannot_pull_and_the_log_says_no_allow_policy_matched(pods, pushed, log):
    repo, digest = pushed
    found = pods[BYSTANDER].probe(f"b pull {BASE} {repo} {digest}")["b"]
    assert (found["status"], found["body"]) == (403, "RBAC: access denied")
    entry = log.find(method="GET", contains=f"/manifests/{digest}")
    assert entry.code == 403 and entry.policy == "none", entry.line


def test_a_pod_without_a_sidecar_is_cut_off_by_strict_mtls(pods, log):
    status, error = pods["plain"].curl("GET", f"{BASE}/v2/")
    assert status == 0 and ("reset" in error.lower() or "empty reply" in error.lower()), error
    entry = log.find(method="-", contains="-")
    assert (entry.code, entry.flags, entry.details) == (0, "NR", "filter_chain_not_found"), entry.line


def test_a_scoped_writer_pushes_inside_its_prefix(pods):
    found = pods[TEAM_A].probe(f"a push {BASE} team-a/app")["a"]
    assert found["result"] == "ok" and found["digest"] == found["served"]


def test_a_scoped_writer_is_refused_outside_its_prefix_by_the_catch_all_deny(pods, log):
    found = pods[TEAM_A].probe(f"a push {BASE} team-b/app")["a"]
    assert found["status"] == 403
    entry = log.find(method="POST", contains="/v2/team-b/app/")
    assert entry.policy == "registry-deny-writes", entry.line


UPLOADS = "blobs/uploads/"
TRICKS = [
    ("POST", f"/v2/team-a/app/{UPLOADS}"),
    ("POST", f"/v2/team-b/app/{UPLOADS}"),
    ("POST", f"/v2/team-a%2F..%2Fteam-b/app/{UPLOADS}"),
    ("POST", f"/v2/team-b%2Fapp/{UPLOADS}"),
    ("POST", f"/v2/team-b%2fapp/{UPLOADS}"),
    ("POST", f"/v2/team-a/../team-b/app/{UPLOADS}"),
    ("POST", f"/v2/team-a/%2e%2e/team-b/app/{UPLOADS}"),
    ("POST", f"/v2/team-a/..;/team-b/app/{UPLOADS}"),
    ("POST", f"//v2/team-a/app/{UPLOADS}"),
    ("POST", f"/v2//team-a/app/{UPLOADS}"),
    ("POST", f"/v2/team-a//app/{UPLOADS}"),
    ("POST", f"/v2/team-b/app/{UPLOADS}?next=/v2/team-a/"),
    ("POST", f"/v2/TEAM-A/app/{UPLOADS}"),
    ("PUT", "/v2/team-b/app/manifests/latest"),
    ("PUT", "/v2/team-a/../team-b/app/manifests/latest"),
    ("DELETE", "/v2/team-a/app/manifests/latest"),
    ("PATCH", f"/v2/team-b/app/{UPLOADS}00000000-0000-0000-0000-000000000000"),
]


@pytest.mark.parametrize(("method", "path"), TRICKS, ids=[f"{m} {p}" for m, p in TRICKS])
def test_the_real_envoy_and_policy_check_agree_on_a_scoped_writers_request(pods, instance, method, path):
    status, body = pods[TEAM_A].curl(method, BASE + path, "--data-binary", "")
    envoy = "DENY" if (status, body) == (403, "RBAC: access denied") else "ALLOW"
    check = instance.meshreg("policy", "check", "--as", TEAM_A, method, path, check=False)
    offline = check.stdout.split(":", 1)[0]
    assert offline in ("ALLOW", "DENY"), check.stdout + check.stderr
    assert envoy == offline, f"{method} {path}: Envoy answered {status} {body[:80]!r}; policy check says " \
                             f"{check.stdout}"


def test_no_trick_wrote_outside_the_scoped_writers_prefix(pods):
    for repo in ("team-b/app", "team-b%2Fapp"):
        status, body = pods[KANIKO].curl("GET", f"{BASE}/v2/{repo}/tags/list")
        assert status == 404 and "NAME_UNKNOWN" in body, (repo, status, body)


def test_a_writer_granted_delete_deletes_and_a_scoped_writer_cannot(pods, log):
    mine = pods[KANIKO].probe(f"k push {BASE} apps/doomed")["k"]
    scoped = pods[TEAM_A].probe(f"a delete {BASE} apps/doomed {mine['digest']}")["a"]
    assert scoped["status"] == 403
    entry = log.find(method="DELETE", contains="/v2/apps/doomed/")
    assert entry.policy == "registry-deny-writes", entry.line
    done = pods[KANIKO].probe(f"k delete {BASE} apps/doomed {mine['digest']}")["k"]
    assert (done["result"], done["status"]) == ("ok", 202)
