"""Where verify's probes run: nowhere pods cannot run. The mesh probes go to the scheduler with only the tolerations
and node selector given; the node-proxy and kubelet probes go to a node that is Ready, not cordoned, whose taints
they tolerate, which matches the selector and runs a ready node proxy; every node turned down says why. Each verdict
says on which node its probe ran; probes pull with the config's imagePullSecrets."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from meshreg import verify
from meshreg.cli import main
from meshreg.cluster.wait import Progress
from meshreg.config import from_text
from meshreg.errors import ClusterError
from meshreg.render.labels import node_proxy_pods
from meshreg.verify.placement import Placement, parse_toleration, tolerates
from support.fakes import FakeCluster, route
from support.verify_helpers import CONFIG, Clock, deployed_cluster


def run_verify(fake, cfg, **kw):
    clock = Clock()
    return verify.run(cluster=fake, cfg=cfg, progress=Progress(quiet=True), timeout=10, clock=clock,
                      sleep=clock.sleep, **kw)


def node(name: str, *, ready: bool = True, cordoned: bool = False, taints=(), labels=None) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"unschedulable": cordoned, "taints": list(taints)},
            "status": {"conditions": [{"type": "Ready", "status": str(ready)}],
                       "nodeInfo": {"operatingSystem": "linux", "architecture": "amd64"}}}


def proxy_pod(cfg, on: str, *, ready: bool = True) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"node-proxy-{on}", "namespace": cfg.namespace, "labels": node_proxy_pods(cfg)},
            "spec": {"nodeName": on}, "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": str(ready)}]}}


DEDICATED = {"key": "dedicated", "value": "ci", "effect": "NoSchedule"}


@pytest.fixture
def cluster():
    """Nodes that cannot run the node probes, each for its own reason, and one (n6) that can."""
    cfg = from_text(CONFIG, name="meshreg.yaml")
    fake = FakeCluster()
    for n in (node("n1", cordoned=True), node("n2", ready=False), node("n3", taints=[DEDICATED]), node("n4"),
              node("n5"), node("n6", taints=[{"key": "spot", "effect": "PreferNoSchedule"}], labels={"pool": "a"})):
        fake.put(n)
    for name in ("n1", "n2", "n3", "n6"):
        fake.put(proxy_pod(cfg, name))
    fake.put(proxy_pod(cfg, "n5", ready=False))
    return fake, cfg


def test_the_node_probes_go_to_the_first_node_that_can_run_them(cluster):
    fake, cfg = cluster
    assert verify.pick_node(fake, cfg, wanted=None)[0] == "n6"  # PreferNoSchedule does not keep pods away


def test_a_taint_the_probes_are_told_to_tolerate_no_longer_keeps_them_away(cluster):
    fake, cfg = cluster
    placement = Placement(tolerations=(parse_toleration("dedicated=ci:NoSchedule"),))
    assert verify.pick_node(fake, cfg, wanted=None, placement=placement)[0] == "n3"


def test_every_node_turned_down_says_why(cluster):
    fake, cfg = cluster
    with pytest.raises(ClusterError) as e:
        verify.pick_node(fake, cfg, wanted=None, placement=Placement(node_selector=(("pool", "b"),)))
    assert str(e.value) == (
        "no node can run the node-proxy and kubelet probes (n1: cordoned (spec.unschedulable); n2: not Ready; "
        "n3: does not match --node-selector pool=b; n4: does not match --node-selector pool=b; "
        "n5: does not match --node-selector pool=b; n6: does not match --node-selector pool=b)")


@pytest.mark.parametrize(("name", "why"), [
    ("n1", "cordoned (spec.unschedulable)"),
    ("n2", "not Ready"),
    ("n3", "tainted dedicated=ci:NoSchedule, which the probes do not tolerate (--toleration dedicated=ci:NoSchedule)"),
    ("n4", "no ready node-proxy pod there"),
    ("n5", "no ready node-proxy pod there"),
])
def test_a_node_asked_for_that_cannot_run_the_probes_is_refused_with_the_reason(cluster, name, why):
    fake, cfg = cluster
    with pytest.raises(ClusterError) as e:
        verify.pick_node(fake, cfg, wanted=name)
    assert str(e.value) == f"--node {name}: the node probes cannot run there: {why}"


@pytest.mark.parametrize(("text", "toleration"), [
    ("dedicated=ci:NoSchedule", {"key": "dedicated", "operator": "Equal", "value": "ci", "effect": "NoSchedule"}),
    ("dedicated:NoExecute", {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
    ("example.com/gpu", {"key": "example.com/gpu", "operator": "Exists"}),
    ("dedicated=ci", {"key": "dedicated", "operator": "Equal", "value": "ci"}),
    (":NoSchedule", {"operator": "Exists", "effect": "NoSchedule"}),
])
def test_tolerations_are_written_as_kubectl_writes_taints(text, toleration):
    assert parse_toleration(text) == toleration


@pytest.mark.parametrize(("toleration", "taint", "expected"), [
    ("dedicated=ci:NoSchedule", DEDICATED, True),
    ("dedicated=cd:NoSchedule", DEDICATED, False),
    ("dedicated:NoSchedule", DEDICATED, True),
    ("dedicated:NoExecute", DEDICATED, False),
    ("dedicated", DEDICATED, True),
    (":NoSchedule", DEDICATED, True),
    (":NoExecute", DEDICATED, False),
    ("other=ci:NoSchedule", DEDICATED, False),
])
def test_a_toleration_matches_a_taint_as_kubernetes_matches_it(toleration, taint, expected):
    assert tolerates(parse_toleration(toleration), taint) is expected


@pytest.mark.parametrize(("args", "message"), [
    (["--toleration", "dedicated=ci:NoRun"], "'NoRun' is not a taint effect"),
    (["--toleration", "=ci:NoSchedule"], "expected KEY[=VALUE][:EFFECT]"),
    (["--toleration", "bad key:NoSchedule"], "'bad key' is not a label key"),
    (["--node-selector", "pool"], "expected KEY=VALUE"),
    (["--node-selector", "pool=a b"], "'a b' is not a label value"),
])
def test_a_bad_toleration_or_selector_is_bad_input_before_anything_is_created(monkeypatch, tmp_path, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(CONFIG)
    fake, _, _ = deployed_cluster()
    route(monkeypatch, fake)
    result = CliRunner().invoke(main, ["verify", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not [r for r in fake.requests if r[0] == "create"]


def probe_specs(probes) -> dict[str, dict]:
    return {p["metadata"]["name"]: p["spec"] for p in probes.pods}


def test_probes_tolerate_nothing_and_only_the_node_probe_is_bound_unless_told_otherwise():
    fake, cfg, probes = deployed_cluster()
    run_verify(fake, cfg)
    for name, spec in probe_specs(probes).items():
        assert "tolerations" not in spec and "nodeSelector" not in spec, name
        assert spec["nodeName"] == ("node-b" if spec.get("hostNetwork") else "node-a"), name  # node-a: scheduled
    jobs = [o for o in probes.jobs if not o["spec"]["template"]["spec"].get("hostNetwork")]
    assert jobs and all("nodeName" not in j["spec"]["template"]["spec"] for j in jobs)


def test_probes_take_the_given_tolerations_and_node_selector_the_kubelet_pull_too():
    fake, cfg, probes = deployed_cluster()
    placement = Placement(tolerations=(parse_toleration("dedicated=ci:NoSchedule"),), node_selector=(("pool", "a"),))
    fake.objects[("v1", "Node", None, "node-b")]["metadata"]["labels"] = {"pool": "a"}
    run_verify(fake, cfg, placement=placement)
    for spec in [*probe_specs(probes).values(), *(p["spec"] for p in probes.pull_pods)]:
        assert spec["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ci",
                                        "effect": "NoSchedule"}]
        assert spec["nodeSelector"] == {"pool": "a"}


def test_each_verdict_says_where_its_probe_ran():
    fake, cfg, _ = deployed_cluster()
    report = run_verify(fake, cfg)
    nodes = {v.expectation.split(" ")[0]: v.node for v in report.verdicts}
    assert nodes["writer"] == nodes["a"] == "node-a"  # where the scheduler put them
    assert nodes["node"] == nodes["kubelet"] == "node-b"


PULLING = CONFIG.replace("spec:\n", "spec:\n  imagePullSecrets: [{name: mirror-pull}]\n", 1)


def test_probes_pull_with_the_configs_secrets_copied_into_the_runs_namespace():
    fake, cfg, probes = deployed_cluster(PULLING)
    fake.put({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
              "metadata": {"name": "mirror-pull", "namespace": cfg.namespace},
              "data": {".dockerconfigjson": "e30="}})
    fake.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mirror-pull", "namespace": "builds"},
              "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}})
    report = run_verify(fake, cfg)
    copies = [r for r in fake.requests if r[0] == "create" and r[1][1] == "Secret"]
    assert [c[1][2] for c in copies] == [f"meshreg-verify-{report.run}"]
    assert all(spec["imagePullSecrets"] == [{"name": "mirror-pull"}] for spec in probe_specs(probes).values())
    assert all("imagePullSecrets" not in p["spec"] for p in probes.pull_pods)  # it pulls from the node proxy
    assert report.notes[0] == ("imagePullSecret mirror-pull is not in namespace team-a: the probe there pulls its "
                               "image without it")


def test_a_pull_secret_missing_from_the_registrys_namespace_is_a_note_not_a_failure():
    fake, cfg, _ = deployed_cluster(PULLING)
    report = run_verify(fake, cfg)
    assert report.ok
    assert f"imagePullSecret mirror-pull is not in namespace meshreg: the probes in meshreg-verify-{report.run} " \
           "pull their image without it" in report.notes


def test_the_probe_image_comes_from_meshreg_verify_image(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(CONFIG)
    fake, _, probes = deployed_cluster()
    route(monkeypatch, fake)
    result = CliRunner(env={"MESHREG_VERIFY_IMAGE": "mirror.example/tools/curl:8.11.1"}).invoke(
        main, ["verify", "-o", "json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"], result.output
    assert {c["image"] for p in probes.pods for c in p["spec"]["containers"] if c["name"] == "probe"} == {
        "mirror.example/tools/curl:8.11.1"}
