"""Retention and garbage collection on the filesystem registry, run the way the rendered CronJob runs them:
its own code from its ConfigMap, through the mesh as the retention identity, the registry restarted read-only
through its Deployment, distribution's garbage-collect, and the registry writable again."""

from __future__ import annotations

import hashlib
import json
import threading
from contextlib import closing

import httpx
import pytest

from support.e2e_cases import TRUST_DOMAIN, WRITER
from support.lab import images
from support.lab.clients import manifest_digest, mtls_client, skopeo_copy
from support.lab.gcjob import NODE, GcJob
from support.lab.mesh import Lab

READ_ONLY = "REGISTRY_STORAGE_MAINTENANCE_READONLY"
GC_IDENTITY = "registry/registry-gc"
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: gc}}
spec:
  namespace: registry
  trustDomain: {TRUST_DOMAIN}
  registry:
    deleteEnabled: true
    gc: {{schedule: "0 3 * * 0", deleteUntagged: true}}
    retention:
      rules: [{{repositories: [team-a/], keepNewest: 2}}]
      protectedTags: ["release-*"]
  writers: [{{serviceAccount: {WRITER}}}]
"""


@pytest.fixture(scope="module")
def gc(real_parts, tmp_path_factory):
    with closing(Lab(CONFIG, tmp_path_factory.mktemp("gc"))) as lab, closing(GcJob(lab)) as job:
        yield job  # a GcJob that fails to start still leaves the lab closed


def build(tmp, name: str, day: int) -> images.Image:
    return images.build(tmp / name, layer_sizes=(3000 + day,), created=f"2026-01-{day:02d}T00:00:00Z")


def push(lab, image, ref: str):
    return skopeo_copy(image.ref, f"docker://{lab.sidecar}/{ref}", dest_ident=lab.identity(WRITER))


def blobs_of(image: images.Image) -> set[str]:
    m = json.loads(image.manifest)
    return {image.digest, m["config"]["digest"], *(layer["digest"] for layer in m["layers"])}


def stored(lab, digest: str) -> bool:
    hexa = digest.split(":")[1]
    return (lab.storage / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data").exists()


@pytest.fixture(scope="module")
def pushed(gc, tmp_path_factory):
    """team-a/app v1..v5 (built on days 1..5) and release-1 (day 0, protected); other/app:moving pushed twice."""
    tmp = tmp_path_factory.mktemp("gc-images")
    lab = gc.lab
    app = {f"v{d}": build(tmp, f"v{d}", d) for d in range(1, 6)}
    app["release-1"] = build(tmp, "release-1", 1)
    for tag, image in app.items():
        assert push(lab, image, f"team-a/app:{tag}").returncode == 0
    moving = [build(tmp, f"moving-{i}", 9) for i in range(2)]
    for image in moving:
        assert push(lab, image, "other/app:moving").returncode == 0
    return app, moving


def test_a_dry_run_changes_nothing_and_says_what_would_go(gc, pushed):
    app, moving = pushed
    run = gc.run(dry_run=True)
    assert set(run.codes.values()) == {0}, run.logs
    assert run.result["retention"] == [{"repository": "team-a/app", "tags": ["v1", "v2", "v3"],
                                        "manifests": sorted(app[t].digest for t in ("v1", "v2", "v3"))}]
    doomed = set().union(*(blobs_of(app[t]) for t in ("v1", "v2", "v3")), blobs_of(moving[0]))
    assert run.result["blobs"]["count"] == len(doomed)
    assert run.applied == [] and all(stored(gc.lab, d) for d in doomed)  # never read-only, nothing removed
    assert manifest_digest(gc.lab.direct, "team-a/app", "v1") == app["v1"].digest


def test_retention_and_gc_remove_exactly_the_expected_manifests_and_blobs(gc, pushed, tmp_path):
    app, moving = pushed
    run = gc.run()
    assert set(run.codes.values()) == {0}, run.logs
    gone, kept = ("v1", "v2", "v3"), ("v4", "v5", "release-1")
    doomed = set().union(*(blobs_of(app[t]) for t in gone), blobs_of(moving[0]))
    assert {d for d in doomed if stored(gc.lab, d)} == set()
    survivors = set().union(*(blobs_of(app[t]) for t in kept), blobs_of(moving[1]))
    assert all(stored(gc.lab, d) for d in survivors)
    assert run.result["blobs"] == {"count": len(doomed), "bytes": sum(_size(gc.lab, app, moving, d) for d in doomed),
                                   "unknownSize": 0}
    assert run.result["untaggedManifests"] == 1 and run.result["readOnly"] == "restored"
    for tag in kept:  # every kept image still pulls, byte for byte
        result = skopeo_copy(f"docker://{gc.lab.node_proxy}/team-a/app:{tag}", f"oci:{tmp_path / tag}:x")
        assert result.returncode == 0, result.stderr
    assert [manifest_digest(gc.lab.direct, "team-a/app", t) for t in gone] == [None, None, None]


def _size(lab, app, moving, digest) -> int:
    for image in [*app.values(), *moving]:
        m = json.loads(image.manifest)
        for d in [{"digest": image.digest, "size": len(image.manifest)}, m["config"], *m["layers"]]:
            if d["digest"] == digest:
                return d["size"]
    raise AssertionError(digest)


def test_garbage_collect_ran_only_while_the_registry_was_read_only_and_pinned(gc, pushed):
    run = gc.run()
    on, off = run.applied
    [container] = on["body"]["spec"]["template"]["spec"]["containers"]
    assert container["env"] == [{"name": READ_ONLY, "value": '{"enabled": true}'}]
    assert on["body"]["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": NODE}
    assert on["query"] == {"fieldManager": "meshreg-gc", "force": "true"}
    assert off["body"]["spec"]["template"]["spec"] == {"containers": [{"name": "registry"}]}
    assert gc.deployment.env == {} and gc.deployment.quits >= 1
    assert push(gc.lab, images.build(gc.lab.root / "after", layer_sizes=(10,)), "team-b/after:v1").returncode == 0


def test_the_retention_identity_may_delete_inside_its_rules_and_nothing_else(gc):
    with mtls_client(gc.lab.sidecar, gc.lab.identity(GC_IDENTITY), ca=gc.lab.ca.ca_file) as client:
        assert client.post("/v2/team-a/app/blobs/uploads/").status_code == 403
        assert client.put("/v2/team-a/app/manifests/x", content=b"{}").status_code == 403
        assert client.delete("/v2/team-b/after/manifests/sha256:" + "0" * 64).status_code == 403
        assert client.delete("/v2/team-a/app/manifests/sha256:" + "0" * 64).status_code == 404  # reached it
        assert client.get("/v2/_catalog").status_code == 200


def _index(lab, repo: str) -> tuple[str, list[str]]:
    """An index of two platform manifests pushed by digest, tagged v1, as buildx pushes it."""
    children = []
    with mtls_client(lab.sidecar, lab.identity(WRITER), ca=lab.ca.ca_file) as client:
        for arch in ("amd64", "arm64"):
            config = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                                 "created": "2026-01-01T00:00:00Z", "nonce": arch + repo}).encode()
            cfg = _blob(client, repo, config)
            body = json.dumps({"schemaVersion": 2, "mediaType": images.MANIFEST,
                               "config": {**cfg, "mediaType": images.CONFIG}, "layers": []}).encode()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            assert client.put(f"/v2/{repo}/manifests/{digest}", content=body,
                              headers={"Content-Type": images.MANIFEST}).status_code == 201
            children.append({"mediaType": images.MANIFEST, "digest": digest, "size": len(body),
                             "platform": {"architecture": arch, "os": "linux"}})
        index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": children}).encode()
        assert client.put(f"/v2/{repo}/manifests/v1", content=index,
                          headers={"Content-Type": "application/vnd.oci.image.index.v1+json"}).status_code == 201
    return "sha256:" + hashlib.sha256(index).hexdigest(), [c["digest"] for c in children]


def _blob(client: httpx.Client, repo: str, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["location"]
    assert client.put(f"{location}&digest={digest}", content=data).status_code == 201
    return {"digest": digest, "size": len(data)}


def test_delete_untagged_never_breaks_a_multi_platform_image(gc):
    """distribution 2.8's --delete-untagged deletes the platform manifests of a tagged index (its issues 3004,
    3178): the Job sees it in the plan and collects without it."""
    index, children = _index(gc.lab, "team-b/multi")
    run = gc.run()
    assert set(run.codes.values()) == {0}, run.logs
    assert sorted(run.result["untaggedKept"]) == sorted(f"team-b/multi@{c}" for c in children)
    accept = {"Accept": f"{images.MANIFEST}, application/vnd.oci.image.index.v1+json"}
    for digest in [index, *children]:
        response = httpx.get(f"http://{gc.lab.direct}/v2/team-b/multi/manifests/{digest}", headers=accept)
        assert response.status_code == 200 and response.headers["docker-content-digest"] == digest


def test_a_push_racing_gc_succeeds_intact_or_fails_cleanly(gc, tmp_path):
    """Pushes run all through a Job (retention, read-only restart, collection, restart): each either fails or
    leaves an image that pulls completely; no tag is left pointing at a missing blob."""
    outcomes, stop = [], threading.Event()

    def pusher():
        i = 0
        while not stop.is_set():
            image = images.build(tmp_path / f"race-{i}", layer_sizes=(200_000,))
            outcomes.append((i, image, push(gc.lab, image, f"race/app:r{i}").returncode == 0))
            i += 1

    thread = threading.Thread(target=pusher)
    thread.start()
    try:
        run = gc.run()
    finally:
        stop.set()
        thread.join()
    assert run.codes["gc"] == 0, run.logs
    succeeded = [(i, image) for i, image, ok in outcomes if ok]
    assert len(outcomes) >= 2 and succeeded, outcomes
    for i, _ in succeeded:
        result = skopeo_copy(f"docker://{gc.lab.node_proxy}/race/app:r{i}", f"oci:{tmp_path / f'pull-{i}'}:x")
        assert result.returncode == 0, result.stderr
    for tag in httpx.get(f"http://{gc.lab.direct}/v2/race/app/tags/list").json()["tags"] or []:
        digest = manifest_digest(gc.lab.direct, "race/app", tag)
        manifest = httpx.get(f"http://{gc.lab.direct}/v2/race/app/manifests/{digest}",
                             headers={"Accept": images.MANIFEST}).json()
        for blob in [manifest["config"], *manifest["layers"]]:
            assert stored(gc.lab, blob["digest"]), (tag, blob)
