"""Two registry replicas on one S3 bucket (moto), each behind its sidecar with the rendered policies, and a
Service spreading requests over whichever replicas are up."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from support.e2e_cases import NON_WRITER, TRUST_DOMAIN, WRITER
from support.lab import images
from support.lab.clients import mtls_client, skopeo_copy
from support.lab.objectstore import S3, Replicas, moto_server

BUCKET = "lab-images"


def config(endpoint: str) -> str:
    return f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: s3}}
spec:
  namespace: registry
  trustDomain: {TRUST_DOMAIN}
  registry:
    storage: {{s3: {{bucket: {BUCKET}, region: us-east-1, credentialsSecret: registry-s3, endpoint: "{endpoint}"}}}}
    replicas: 2
  writers: [{{serviceAccount: {WRITER}}}]
"""


@pytest.fixture(scope="module")
def s3(real_parts, tmp_path_factory):
    if not moto_server():
        pytest.skip("the S3 tests need moto's server: pip install 'moto[server]' (in the test extras)")
    store = S3(tmp_path_factory.mktemp("moto"), BUCKET)
    yield store
    store.server.stop()


@pytest.fixture(scope="module")
def replicas(s3, tmp_path_factory):
    lab = Replicas(config(s3.url), tmp_path_factory.mktemp("replicas"), s3)
    yield lab
    lab.close()


def push(lab, image, address: str, ref: str):
    return skopeo_copy(image.ref, f"docker://{address}/{ref}", dest_ident=lab.identity(WRITER))


def pull(lab, address: str, ref: str, dest):
    return skopeo_copy(f"docker://{address}/{ref}", f"oci:{dest}:x", src_ident=lab.identity(WRITER))


def test_an_image_pushed_through_one_replica_pulls_through_the_other(replicas, tmp_path):
    image = images.build(tmp_path / "img", layer_sizes=(50_000, 7_000))
    assert push(replicas, image, replicas.sidecar(0), "team/app:v1").returncode == 0
    result = pull(replicas, replicas.sidecar(1), "team/app:v1", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "blobs" / "sha256" / image.digest.split(":")[1]).read_bytes() == image.manifest
    assert any(key.endswith("/data") for key in replicas.s3.objects(BUCKET))  # the bytes are in the bucket


def test_an_upload_begun_on_one_replica_is_finished_on_the_other(replicas):
    data = b"x" * 300_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    a = mtls_client(replicas.sidecar(0), replicas.identity(WRITER), ca=replicas.ca.ca_file)
    b = mtls_client(replicas.sidecar(1), replicas.identity(WRITER), ca=replicas.ca.ca_file)
    with a, b:
        started = a.post("/v2/team/split/blobs/uploads/")
        assert started.status_code == 202, started.text
        half = b.patch(started.headers["location"], content=data[:150_000],
                       headers={"Content-Type": "application/octet-stream"})
        assert half.status_code == 202, half.text  # replica 1 accepts the state replica 0 signed
        done = a.put(f"{half.headers['location']}&digest={digest}", content=data[150_000:])
        assert done.status_code == 201, done.text
        assert b.head(f"/v2/team/split/blobs/{digest}").headers["content-length"] == str(len(data))


def test_each_replica_enforces_the_same_rendered_policies(replicas, tmp_path):
    image = images.build(tmp_path / "img", layer_sizes=(100,))
    for i in (0, 1):
        result = skopeo_copy(image.ref, f"docker://{replicas.sidecar(i)}/team/web:v1",
                             dest_ident=replicas.identity(NON_WRITER))
        assert result.returncode != 0 and "StatusCode: 403" in result.stderr


def test_gc_garbage_collect_on_s3_finds_its_credentials_under_the_aws_names(replicas, tmp_path):
    """The gc Job's garbage-collect containers take the S3 keys as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (the
    driver's credential chain), not REGISTRY_STORAGE_S3_*, which would add an s3 driver to the empty storage's
    config the containers that should not run are handed: both configs work with the rendered environment."""
    import subprocess

    from meshreg.config import from_text
    from meshreg.render import render
    from support.lab.mesh import one
    from support.lab.objectstore import SECRET

    assert push(replicas, images.build(tmp_path / "img", layer_sizes=(3_000,)), replicas.sidecar(0),
                "team/gc:v1").returncode == 0
    with_gc = config(replicas.s3.url).replace("    replicas: 2\n", "    replicas: 2\n    gc: {schedule: \"@daily\"}\n")
    cron = one(render(from_text(with_gc, name="gc.yaml")), "CronJob", "registry-gc")
    collector = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][1]
    env_of = {e["name"]: SECRET[e["valueFrom"]["secretKeyRef"]["key"]] for e in collector["env"]}
    assert sorted(env_of) == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    noop = tmp_path / "noop"
    for part in ("repositories", "blobs"):
        (noop / "docker/registry/v2" / part).mkdir(parents=True)
    (tmp_path / "noop.yml").write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {noop}\n")
    env = {"PATH": "/usr/bin:/bin", **env_of}
    real = subprocess.run(["docker-registry", "garbage-collect", "--dry-run", str(replicas.root / "config.yml")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert real.returncode == 0 and "team/gc: marking manifest" in real.stdout, real.stderr
    empty = subprocess.run(["docker-registry", "garbage-collect", "--delete-untagged", str(tmp_path / "noop.yml")],
                           env=env, capture_output=True, text=True, timeout=60)
    assert empty.returncode == 0 and "0 blobs marked" in empty.stdout, empty.stderr


def test_after_a_replica_dies_mid_push_the_next_push_succeeds(replicas, tmp_path):
    """Last in this module: it kills replica 0."""
    big = images.build(tmp_path / "big", layer_sizes=(48 * 1024 * 1024,))
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(
        first=push(replicas, big, replicas.service_address, "team/big:v1")))
    thread.start()
    time.sleep(1.0)
    replicas.kill(0)
    thread.join()
    deadline = time.monotonic() + 15
    while replicas.healthy() != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert replicas.healthy() == 1  # the Service no longer sends to the dead replica
    again = images.build(tmp_path / "again", layer_sizes=(2 * 1024 * 1024,))
    result = push(replicas, again, replicas.service_address, "team/big:v2")
    assert result.returncode == 0, result.stderr
    assert pull(replicas, replicas.sidecar(1), "team/big:v2", tmp_path / "v2").returncode == 0
    if outcome["first"].returncode == 0:  # finished before the kill, or on the survivor: then it is whole
        assert pull(replicas, replicas.sidecar(1), "team/big:v1", tmp_path / "v1").returncode == 0

