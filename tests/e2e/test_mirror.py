"""The mirror role on real parts: pull-through, read-only, its cache served and its start survived while the
upstream is down, and credentials that reach distribution only through its environment."""

from __future__ import annotations

import json
import time
from contextlib import closing

import httpx
import pytest

from meshreg.cluster import crashes
from support.lab import images
from support.lab.clients import skopeo_copy
from support.lab.mirror import PASSWORD, USER, MirrorLab
from support.lab.processes import free_port

CONFIG = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: mirrorlab}
spec:
  namespace: registry
  trustDomain: lab.example
  registries:
    - name: images
      default: true
      port: 5000
      writers: [{serviceAccount: builds/kaniko}]
    - name: hub
      role: mirror
      port: 5001
      mirror: {upstream: "https://upstream.lab.example", credentialsSecret: hub-credentials}
"""
READER, WRITER = "apps/web", "builds/kaniko"
REPO = "library/app:v1"


@pytest.fixture(scope="module")
def mirror(real_parts, tmp_path_factory):
    with closing(MirrorLab(CONFIG, tmp_path_factory.mktemp("mirror"), mirror_name="hub")) as lab:
        yield lab


@pytest.fixture(scope="module")
def seeded(mirror, tmp_path_factory):
    """An image published upstream (over TLS, with the upstream's credentials), not yet in the mirror."""
    image = images.build(tmp_path_factory.mktemp("mirror-image") / "layout", layer_sizes=(4096,))
    result = skopeo_copy(image.ref, f"docker://{mirror.upstream.address}/{REPO}", dest_ident=mirror.upstream.ident,
                         dest_creds=f"{USER}:{PASSWORD}")
    assert result.returncode == 0, result.stderr
    return image


def pull(mirror, tmp_path, name="out"):
    result = skopeo_copy(f"docker://{mirror.sidecar}/{REPO}", f"oci:{tmp_path / name}:v1",
                         src_ident=mirror.identity(READER))
    digest = json.loads((tmp_path / name / "index.json").read_text())["manifests"][0]["digest"] \
        if result.returncode == 0 else None
    return result, digest


def test_a_pull_through_the_mirror_fills_its_cache_from_the_upstream(mirror, seeded, tmp_path):
    before = mirror.upstream.requests("/v2/library/app/manifests/v1")
    result, digest = pull(mirror, tmp_path)
    assert result.returncode == 0, result.stderr
    assert digest == seeded.digest
    assert mirror.upstream.requests("/v2/library/app/manifests/v1") > before  # it really came from upstream


def test_a_push_is_refused_by_the_mesh_and_by_distribution(mirror, seeded):
    result = skopeo_copy(seeded.ref, f"docker://{mirror.sidecar}/library/pushed:v1",
                         dest_ident=mirror.identity(WRITER))  # a writer of the other registry
    assert result.returncode != 0 and "403" in result.stderr, result.stderr
    direct = httpx.post(f"http://{mirror.direct}/v2/library/pushed/blobs/uploads/")  # around the mesh
    assert direct.status_code == 405 and "UNSUPPORTED" in direct.text


def test_cached_images_are_served_and_the_mirror_restarts_while_the_upstream_is_down(mirror, seeded, tmp_path):
    assert pull(mirror, tmp_path, "warm")[0].returncode == 0
    mirror.upstream.stop()
    try:
        result, digest = pull(mirror, tmp_path, "cached")
        assert result.returncode == 0, result.stderr
        assert digest == seeded.digest
        # A restart with the upstream gone: the sidecar answers 503 for it, which distribution starts on.
        mirror.mirror.stop()
        answered = mirror.stat("http.egress.downstream_rq_5xx")
        mirror.mirror = mirror.start_mirror(storage=mirror.root / "mirror-data", log="mirror-restarted.log")
        assert mirror.stat("http.egress.downstream_rq_5xx") > answered  # its start-up ping got Envoy's 503
        result, digest = pull(mirror, tmp_path, "after-restart")
        assert result.returncode == 0, result.stderr
        assert digest == seeded.digest
        # Even a first start, with nothing cached yet, needs no upstream.
        mirror.start_mirror(storage=tmp_path / "empty", log="mirror-first.log", port=free_port()).stop()
    finally:
        mirror.upstream.start()


@pytest.mark.parametrize(("how", "needle"), [
    ("refused", "connection refused"),  # a sidecar that is not listening yet
    ("passthrough", "EOF"),  # a sidecar passing the registry's own TLS through to an upstream that is gone
])
def test_without_an_http_answer_the_mirror_panics_at_start_and_status_can_say_why(mirror, how, needle, tmp_path):
    remote = {"refused": f"http://127.0.0.1:{free_port()}",
              "passthrough": f"https://127.0.0.1:{mirror.passthrough_port}"}[how]
    server = mirror.start_mirror(storage=tmp_path / "data", remote=remote, wait=False, log=f"panic-{how}.log",
                                 port=free_port())
    deadline = time.monotonic() + 20
    while server.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.proc.returncode not in (None, 0), "the registry kept running"
    log = server.log.read_text()
    assert "panic: Get" in log and (needle in log or "reset by peer" in log), log[-2000:]
    why = crashes.explain(log)
    assert why and why.startswith(f"the mirror panicked while starting because it could not reach {remote}")


def test_credentials_reach_the_mirror_only_through_its_environment(mirror, seeded, tmp_path):
    assert "password" not in mirror.rendered_config() and PASSWORD not in mirror.rendered_config()
    asked = len(mirror.upstream.tokens.asked)
    port = free_port()
    server = mirror.start_mirror(storage=tmp_path / "data", credentials=False, log="mirror-nocreds.log", port=port)
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/v2/library/app/manifests/v1",
                             headers={"Accept": images.MANIFEST}, timeout=30)
        assert response.status_code != 200  # nothing cached, and the upstream gave it no token
        assert mirror.upstream.tokens.asked[asked:] and set(mirror.upstream.tokens.asked[asked:]) == {None}
    finally:
        server.stop()
    # The mirror started by the lab has the credentials in its environment, as the Deployment's secretKeyRefs
    # put them there, and the token realm saw them.
    assert USER in mirror.upstream.tokens.asked
