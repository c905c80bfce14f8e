"""What verify expects of each registry, by role, and which identity runs which step (pure: no cluster)."""

from __future__ import annotations

from meshreg.config import from_text, load
from meshreg.verify.plan import Planner
from support.paths import ROOT
from support.verify_helpers import CONFIG


def plan(cfg, pushed=(), as_identity=None):
    planner = Planner(cfg, run="r1", namespace="meshreg-verify-r1", as_identity=as_identity)
    first = planner.phase_one()
    done = {e.registry: e for e in first if e.want == "pushed" and e.registry in pushed}
    for e in done.values():
        e.digest = "sha256:" + "0" * 64
    return planner, [(e.registry, e.text, e.want, e.skip or e.blocked) for e in first + planner.phase_two(done)]


def test_separate_registries_each_get_the_expectations_of_their_role():
    cfg = load(str(ROOT / "examples/gitpod-separate-registries/meshreg.yaml"))
    planner, rows = plan(cfg, pushed={"workspace-images", "service-images"})
    readonly = [r[1:] for r in rows if r[0] == "service-images"]
    assert ("writer gitpod/airgap-loader pushes meshreg-verify/r1", "pushed", "") in readonly
    assert ("writer gitpod/image-builder-mk3 of another registry pushes", "denied", "") in readonly
    assert ("node proxy: push to localhost:5001", "denied", "") in readonly
    steps = {s.base for p in planner.probes.values() for s in p.steps}
    assert "http://service-images.gitpod-registry.svc.cluster.local:5000" in steps
    assert "http://localhost:5001" in steps


def test_a_mirror_refuses_every_writer_and_has_nothing_of_ours_for_the_kubelet():
    cfg = load(str(ROOT / "examples/gitpod-mirror/meshreg.yaml"))
    _, rows = plan(cfg, pushed={"workspace-images"})
    mirror = [r[1:] for r in rows if r[0] == "service-images"]
    assert ("writer gitpod/image-builder-mk3 of another registry pushes", "denied", "") in mirror
    assert ("node proxy: GET /v2/ on localhost:5001", "read", "") in mirror
    assert ("kubelet pulls from localhost:5001", "pulled",
            "nobody writes service-images (role mirror): no image of ours to pull") in mirror
    assert not [r for r in mirror if r[2] == "pushed"]


def test_without_writers_the_push_is_skipped_and_the_kubelet_has_nothing_to_pull():
    cfg = from_text("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: x}\nspec: {}\n",
                    name="m.yaml")
    _, rows = plan(cfg)
    assert ("registry", "a writer pushes", "pushed", "no writers configured") in rows
    assert rows[-1][3] == "nobody writes registry (role images): no image of ours to pull"


def test_a_push_that_did_not_hold_blocks_the_kubelet_pull_and_the_node_proxy_reads_v2_instead():
    _, rows = plan(from_text(CONFIG, name="m.yaml"))
    assert ("registry", "node proxy: GET /v2/ on localhost:5000", "read", "") in rows
    assert rows[-1][3] == "not run: the writer's push did not succeed, so there is nothing to pull"


def test_as_picks_the_writer_that_pushes_and_the_scoped_one_stays_inside_its_prefix():
    planner, rows = plan(from_text(CONFIG, name="m.yaml"), as_identity="team-a/builder")
    assert rows[0][1] == "writer team-a/builder pushes team-a/meshreg-verify-r1"
    assert rows[1][1] == "scoped writer team-a/builder pushes meshreg-verify-outside/r1"
    assert [(p.namespace, p.service_account) for p in planner.probes.values() if p.name.startswith("writer")] == [
        ("team-a", "builder")]
