"""CRI-O's side of the runtime config, with the library CRI-O pulls with: containers/image (in skopeo) reads the
same registries.conf.d drop-ins. It needs one for localhost; the drop-in the runtime config writes makes it pull over
plain HTTP through the node proxy. (No CRI-O runs here: this tests the files and the library, not the daemon.)"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from meshreg.config import from_text
from meshreg.render import render
from support import runtime_config_pod as pod
from support.e2e_cases import WITH_DELETE, WRITER
from support.lab import pulls

HOSTS = ["localhost", "127.0.0.1"]


def _skopeo(home, *args: str) -> subprocess.CompletedProcess:
    """skopeo with HOME (so its per-user registries.conf.d and caches) in a temp directory; TLS checks as default."""
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(["skopeo", "--insecure-policy", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def home(tmp_path):
    drop_ins = tmp_path / "home" / ".config" / "containers" / "registries.conf.d"
    drop_ins.mkdir(parents=True)
    return tmp_path / "home"


def test_containers_image_will_not_pull_from_localhost_over_http_without_a_drop_in(lab, home, tmp_path):
    pulls.fresh(lab, tmp_path, "builds/crio-bare", writer=WRITER)
    done = _skopeo(home, "inspect", "--raw", f"docker://localhost:{lab.node_proxy_port}/builds/crio-bare:v1")
    assert done.returncode != 0
    assert "http: server gave HTTP response to HTTPS client" in done.stderr, done.stderr


@pytest.mark.parametrize("host", HOSTS)
def test_the_set_up_drop_in_makes_containers_image_pull_through_the_node_proxy(lab, home, tmp_path, host):
    text = WITH_DELETE + (f"  nodeProxy:\n    port: {lab.node_proxy_port}\n"
                          "    runtimeConfig: {crio: {enabled: true}}\n")
    objects = render(from_text(text, name="meshreg.yaml"))
    mount, drop_ins = tmp_path / "wanted", home / ".config" / "containers" / "registries.conf.d"
    pod.project(objects, mount)
    env = pod.environment(objects, "crio", mount=mount, target=drop_ins, owner="e2e")
    assert pod.run(mount, env, "sync").returncode == 0
    assert [p.name for p in drop_ins.glob("*.conf")] == [f"meshreg-{lab.node_proxy_port}.conf"]

    repo = f"builds/crio-{host.replace('.', '-')}"
    image = pulls.fresh(lab, tmp_path, repo, writer=WRITER)
    watch = pulls.Watch(lab)
    done = _skopeo(home, "copy", "--retry-times", "0", f"docker://{host}:{lab.node_proxy_port}/{repo}:v1",
                   f"oci:{tmp_path / 'out'}:v1")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "index.json").read_text())["manifests"][0]["digest"] == image.digest
    wanted = {"GET manifests/v1", *pulls.blob_requests(image)}
    assert wanted <= watch.served(repo, agent="skopeo/"), watch.served(repo, agent="")
    assert watch.node_proxy_answers() >= len(wanted)

    assert pod.run(mount, env, "remove").returncode == 0
    assert list(drop_ins.iterdir()) == []
