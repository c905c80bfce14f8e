"""`meshreg verify` on the fake cluster: what it creates and where, how it judges what probes report, every failure
explained, and nothing left behind whatever happens."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from meshreg import verify
from meshreg.cluster.wait import Progress
from meshreg.errors import ClusterError
from meshreg.verify.session import sweep
from support.verify_helpers import CONFIG, Clock, deployed_cluster, leftovers, line


def run_verify(fake, cfg, clock=None, **kw):
    clock = clock or Clock()
    return verify.run(cluster=fake, cfg=cfg, progress=Progress(quiet=True), timeout=10, clock=clock,
                      sleep=clock.sleep, **kw)


def table(report) -> list[tuple]:
    return [(v.expectation, v.verdict) for v in report.verdicts]


def created(fake, kind) -> list[dict]:
    return [r for r in fake.requests if r[0] == "create" and r[1][1] == kind]


def test_a_healthy_mesh_holds_every_expectation_and_verify_leaves_nothing_behind():
    fake, cfg, _ = deployed_cluster()
    report = run_verify(fake, cfg)
    run = report.run
    assert table(report) == [
        (f"writer builds/kaniko pushes meshreg-verify/{run}", "PASS"),
        (f"scoped writer team-a/builder pushes team-a/meshreg-verify-{run}", "PASS"),
        (f"scoped writer team-a/builder pushes meshreg-verify-outside/{run}", "PASS"),
        (f"a bystander (meshreg-verify-{run}/bystander, injected) pushes", "PASS"),
        ("a pod with no sidecar pushes", "PASS"),
        ("a pod with no sidecar pulls", "PASS"),
        (f"node proxy: pull meshreg-verify/{run} from localhost:5000", "PASS"),
        ("node proxy: push to localhost:5000", "PASS"),
        (f"kubelet pulls localhost:5000/meshreg-verify/{run}@sha256:abababababab…", "PASS")]
    assert report.ok and report.node == "node-b"  # the node that runs a node proxy
    assert f"deleted the probe image registry: meshreg-verify/{run}@sha256:{'ab' * 32}" in report.notes
    assert f"removed namespace meshreg-verify-{run} and the probes" in report.notes
    assert leftovers(fake) == []


def test_probes_run_as_the_real_identities_where_they_live():
    fake, cfg, probes = deployed_cluster()
    report = run_verify(fake, cfg)
    where = {(p["metadata"]["namespace"], p["spec"]["serviceAccountName"], bool(p["spec"].get("hostNetwork")),
              p["spec"].get("nodeName")) for p in probes.pods}
    temp = f"meshreg-verify-{report.run}"
    # The mesh probes go wherever the scheduler puts them (node-a, in the fake); the node-proxy probe is bound.
    assert where == {("builds", "kaniko", False, "node-a"), ("team-a", "builder", False, "node-a"),
                     (temp, "bystander", False, "node-a"), (temp, "bystander", True, "node-b")}
    writer = next(p for p in probes.pods if p["metadata"]["namespace"] == "builds" and "delete" not in
                  p["metadata"]["name"])
    env = {e["name"]: e["value"] for e in writer["spec"]["containers"][0]["env"]}
    assert env["PROBE_ARCH"] == "arm64" and env["PROBE_SIDECAR"] == "wait"
    assert writer["spec"]["containers"][0]["image"] == "docker.io/curlimages/curl:8.11.1"
    [pull] = [r for r in fake.requests if r[0] == "create" and r[1][1] == "Pod"]
    assert pull[1][2] == temp


def test_a_probe_whose_log_cannot_be_read_fails_with_the_reason_and_everything_is_removed():
    fake, cfg, _ = deployed_cluster(logs=False)
    report = run_verify(fake, cfg)
    assert not report.ok
    writer = report.verdicts[0]
    assert writer.verdict == "FAIL"
    assert writer.observed.startswith("cannot read the probe's result from its log: get pods/log in namespace builds "
                                      "failed:")
    assert report.verdicts[-1].observed == ("not run: the writer's push did not succeed, so there is nothing to "
                                            "pull")
    assert leftovers(fake) == []


def test_a_probe_that_never_finishes_fails_with_a_diagnosis_after_the_deadline():
    fake, cfg, _ = deployed_cluster(finish=False, logs=False)
    report = run_verify(fake, cfg)
    observed = report.verdicts[0].observed
    assert observed.startswith(f"probe Job builds/meshreg-verify-{report.run}-writer-1 did not finish in 10s: ")
    assert "cannot read the probe's result" in observed
    assert leftovers(fake) == []


def test_ctrl_c_removes_every_probe_and_says_so():
    fake, cfg, _ = deployed_cluster(finish=False)
    with pytest.raises(verify.Interrupted) as e:
        run_verify(fake, cfg, clock=Clock(interrupt_after=2))
    assert leftovers(fake) == []
    assert any(n.startswith("removed namespace meshreg-verify-") for n in e.value.report.notes)


def test_a_writer_probe_without_a_sidecar_says_the_namespace_was_not_injected():
    fake, cfg, _ = deployed_cluster(inject={"builds": False})
    report = run_verify(fake, cfg)
    writer = report.verdicts[0]
    assert writer.verdict == "FAIL"
    assert writer.observed == ("layer: no HTTP answer (curl: (56) Recv failure: Connection reset by peer); no "
                               "istio-proxy sidecar was injected into the probe pod (is namespace builds injected?)")


def test_a_no_sidecar_probe_that_got_a_sidecar_proves_nothing():
    fake, cfg, probes = deployed_cluster()

    def inject_everything(cluster, obj):  # an injector that ignores sidecar.istio.io/inject=false there
        if obj["kind"] == "Namespace":
            probes.inject[obj["metadata"]["name"]] = True
    fake.on_create.insert(0, inject_everything)
    report = run_verify(fake, cfg)
    plain = [v for v in report.verdicts if "no sidecar" in v.expectation]
    assert {v.verdict for v in plain} == {"FAIL"}
    assert plain[0].observed == ("the probe pod got an istio-proxy sidecar although it asked for none: this proves "
                                 "nothing")


def test_a_mesh_that_lets_the_bystander_write_fails_that_expectation():
    fake, cfg, probes = deployed_cluster()
    decide = probes.decide
    probes.decide = lambda step, pod: ({"result": "ok", "status": 200, "digest": "sha256:1", "served": "sha256:1"}
                                       if pod["spec"]["serviceAccountName"] == "bystander" and step["verb"] == "push"
                                       and not step["base"].startswith("http://localhost") else decide(step, pod))
    report = run_verify(fake, cfg)
    [bystander] = [v for v in report.verdicts if "bystander" in v.expectation]
    assert (bystander.verdict, bystander.observed) == ("FAIL", "pushed: the mesh let it write")


def test_a_log_that_stops_early_fails_the_steps_it_did_not_report():
    fake, cfg, _ = deployed_cluster(end=False, drop={"ping"})
    report = run_verify(fake, cfg)
    [pull] = [v for v in report.verdicts if v.expectation == "a pod with no sidecar pulls"]
    assert (pull.verdict, pull.observed) == ("FAIL", "the probe printed no result for this step; its log stops "
                                                     "before the end")


def test_a_probe_that_cannot_be_created_fails_its_rows_and_the_rest_still_run():
    fake, cfg, _ = deployed_cluster()
    original = fake.create

    def create(obj, **kw):
        if obj["kind"] == "Job" and obj["metadata"]["namespace"] == "team-a":
            raise ClusterError("forbidden: cannot create jobs.batch in namespace team-a")
        return original(obj, **kw)
    fake.create = create
    report = run_verify(fake, cfg)
    team_a = [v for v in report.verdicts if "team-a/builder" in v.expectation]
    assert {v.observed for v in team_a} == {"could not create the probe in namespace team-a: forbidden: cannot "
                                            "create jobs.batch in namespace team-a"}
    assert report.verdicts[0].verdict == "PASS"
    assert leftovers(fake) == []


def test_a_failed_kubelet_pull_shows_the_runtimes_error():
    message = ('Failed to pull image "localhost:5000/x": rpc error: code = Unknown desc = failed to resolve: '
               'http: server gave HTTP response to HTTPS client')
    fake, cfg, _ = deployed_cluster(pulled=[("Warning", "Failed", message)])
    report = run_verify(fake, cfg)
    kubelet = report.verdicts[-1]
    assert kubelet.verdict == "FAIL"
    assert kubelet.observed == message + " (the runtime spoke HTTPS to localhost: see meshreg doctor --check nodes)"


def test_an_image_already_on_the_node_proves_nothing_about_localhost():
    fake, cfg, _ = deployed_cluster(pulled=[("Normal", "Pulled", 'Container image "x" already present on machine')])
    report = run_verify(fake, cfg)
    assert report.verdicts[-1].verdict == "FAIL" and "the kubelet did not pull" in report.verdicts[-1].observed


def test_without_a_pulled_event_the_kubelet_expectation_times_out_with_the_pods_state():
    fake, cfg, _ = deployed_cluster(pulled=[])
    report = run_verify(fake, cfg)
    assert report.verdicts[-1].observed.startswith("no Pulled event within 10s")


def test_the_probe_image_stays_and_is_named_where_delete_is_not_enabled():
    fake, cfg, _ = deployed_cluster(CONFIG.replace("registry: {deleteEnabled: true}", "registry: {}")
                                    .replace("      delete: true\n", ""))
    report = run_verify(fake, cfg)
    assert f"left in registry registry: meshreg-verify/{report.run}@sha256:{'ab' * 32} (deleteEnabled is false); " \
           "the registry's garbage collection can remove it once it is deleted" in report.notes


def test_verify_refuses_to_start_when_the_registry_is_not_deployed():
    fake, cfg, _ = deployed_cluster()
    del fake.objects[("apps/v1", "Deployment", "meshreg", "registry")]
    with pytest.raises(ClusterError, match=r"registry registry is not deployed in namespace meshreg .*meshreg up"):
        run_verify(fake, cfg)
    assert not [r for r in fake.requests if r[0] == "create"]


def test_sweep_removes_only_expired_namespaces_of_earlier_runs():
    fake, _, _ = deployed_cluster()
    for name, expires in (("meshreg-verify-old", "2026-01-01T00:00:00Z"), ("meshreg-verify-live",
                                                                          "2026-12-31T00:00:00Z")):
        fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": name, "labels": {"app.kubernetes.io/managed-by": "meshreg-verify"},
            "annotations": {"meshreg.dev/verify-expires": expires}}})
    notes = sweep(fake, now=datetime(2026, 6, 1, tzinfo=timezone.utc))
    assert notes == ["removed namespace meshreg-verify-old left by an earlier run"]
    assert fake.get("v1", "Namespace", "meshreg-verify-live") is not None


def test_probe_lines_the_probe_never_prints_are_not_results():
    from meshreg.verify.results import parse
    log = parse("\n".join(["noise", line(event="start"), "meshreg-probe {torn", line(id="e1", result="ok"),
                           line(event="end")]))
    assert list(log.results) == ["e1"] and log.ended and log.sidecar_ready is None


def test_a_create_this_run_already_made_counts_as_created_and_anyone_elses_is_refused():
    from meshreg.verify import objects
    from meshreg.verify.session import Session
    from support.fakes import FakeCluster

    fake = FakeCluster()
    session = Session(fake, run="abc123", namespace="meshreg-verify-abc123")
    mine = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {
        "name": "probe", "namespace": "default", "labels": {objects.RUN: "abc123"}}}
    fake.put(mine)  # the server did the create, and its answer was lost on the way
    assert session.create(mine)["metadata"]["labels"] == {objects.RUN: "abc123"}
    assert session.created == [("v1", "ServiceAccount", "default", "probe")]  # so cleanup removes it
    theirs = {**mine, "metadata": {**mine["metadata"], "name": "other", "labels": {objects.RUN: "def456"}}}
    fake.put(theirs)
    with pytest.raises(ClusterError, match='creating ServiceAccount default/other: already exists'):
        session.create({**theirs, "metadata": {**theirs["metadata"], "labels": {objects.RUN: "abc123"}}})
