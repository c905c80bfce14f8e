"""The kubelet's pull path on a real container runtime: containerd's CRI PullImage through the node proxy.

containerd runs with its own root, state, socket and registry config_path; each pull is of a fresh image in its own
repository, and each test checks in the registry's log and in Envoy's counters that the registry served it through
the node proxy, so no cached image can pass for a pull.
"""

from __future__ import annotations

import re

import grpc
import pytest

from meshreg.config import from_text
from meshreg.render import render, runtimeconfig
from support import runtime_config_pod as pod
from support.e2e_cases import WITH_DELETE, WRITER
from support.lab import images, pulls
from support.lab.containerd import Containerd, unavailable

HOSTS = ["localhost", "127.0.0.1"]


@pytest.fixture(scope="module")
def containerd(real_parts, tmp_path_factory):
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    try:
        runtime = Containerd(tmp_path_factory.mktemp("containerd"))
    except RuntimeError as e:
        pytest.skip(f"containerd cannot start here: {e}")
    try:
        yield runtime
    finally:
        runtime.close()


def _fresh(lab, tmp_path, repo: str) -> images.Image:
    return pulls.fresh(lab, tmp_path, repo, writer=WRITER)


def _pull(lab, containerd, image: images.Image, ref: str, repo: str) -> str:
    """The kubelet's PullImage; then proof the registry served manifest and every blob via the node proxy.
    Returns what containerd logged meanwhile."""
    watch, containerd_start = pulls.Watch(lab), len(containerd.log_text())
    image_id = containerd.cri.pull(ref)
    status = containerd.cri.status(ref)
    assert status is not None and status.id == image_id
    assert f"{ref.rsplit(':', 1)[0]}@{image.digest}" in status.repo_digests
    served = watch.served(repo, agent="containerd/")
    wanted = {"HEAD manifests/v1", f"GET manifests/{image.digest}", *pulls.blob_requests(image)}
    assert wanted <= served, served
    assert watch.node_proxy_answers() >= len(wanted)
    containerd.cri.remove(ref)
    assert containerd.cri.status(ref) is None
    return containerd.log_text()[containerd_start:]


def _loaded_host_dir(containerd, host: str, log: str) -> bool:
    """Whether containerd's debug `log` says it read (and could decode) the config_path directory of `host`."""
    where = re.escape(f"{containerd.hosts_dir}/{host}")
    loaded = re.search(rf'msg="loading host directory" dir="?{where}"?$', log, re.M) is not None
    return loaded and "failed to decode hosts.toml" not in log


@pytest.mark.parametrize("host", HOSTS)
def test_the_kubelets_pull_goes_through_the_node_proxy_with_no_hosts_toml(lab, containerd, tmp_path, host):
    repo = f"builds/bare-{host.replace('.', '-')}"
    address = f"{host}:{lab.node_proxy_port}"
    assert list(containerd.hosts_dir.iterdir()) == []
    log = _pull(lab, containerd, _fresh(lab, tmp_path, repo), f"{address}/{repo}:v1", repo)
    assert "loading host directory" not in log


@pytest.fixture
def runtime_config(lab, containerd, tmp_path):
    """The rendered runtime config for the lab's node-proxy port: its ConfigMap's script run against containerd's
    config_path, as the DaemonSet's container runs it; afterwards its `remove` must leave the directory empty."""
    text = WITH_DELETE + (f"  nodeProxy:\n    port: {lab.node_proxy_port}\n    runtimeConfig:\n"
                          "      containerd: {enabled: true, configPath: /etc/containerd/certs.d}\n")
    objects = render(from_text(text, name="meshreg.yaml"))
    mount = tmp_path / "wanted"
    pod.project(objects, mount)
    assert (mount / runtimeconfig.SCRIPT).read_text() == runtimeconfig.script()
    env = pod.environment(objects, "containerd", mount=mount, target=containerd.hosts_dir, owner="e2e")
    done = pod.run(mount, env, "sync")
    assert done.returncode == 0, done.stderr
    yield
    done = pod.run(mount, env, "remove")
    assert done.returncode == 0, done.stderr
    assert list(containerd.hosts_dir.iterdir()) == []


@pytest.mark.parametrize("host", HOSTS)
def test_the_kubelets_pull_uses_the_hosts_toml_the_runtime_config_writes(lab, containerd, runtime_config, tmp_path,
                                                                          host):
    repo = f"builds/configured-{host.replace('.', '-')}"
    address = f"{host}:{lab.node_proxy_port}"
    hosts_toml = containerd.hosts_dir / address / "hosts.toml"
    assert f'server = "http://{address}"' in hosts_toml.read_text()
    log = _pull(lab, containerd, _fresh(lab, tmp_path, repo), f"{address}/{repo}:v1", repo)
    assert _loaded_host_dir(containerd, address, log)


def test_containerds_own_push_through_the_node_proxy_is_refused(lab, containerd, tmp_path):
    address = f"localhost:{lab.node_proxy_port}"
    source, target = f"{address}/builds/push-source:v1", f"{address}/builds/pushed-by-containerd:v1"
    _fresh(lab, tmp_path, "builds/push-source")
    containerd.cri.pull(source)
    try:
        tagged = containerd.ctr("images", "tag", source, target)
        assert tagged.returncode == 0, tagged.stderr
        pushed = containerd.ctr("images", "push", "--plain-http", target)
        assert pushed.returncode != 0
        assert "403 Forbidden" in pushed.stderr, pushed.stderr
        assert "builds/pushed-by-containerd" not in lab.repositories()
    finally:
        containerd.ctr("images", "rm", source, target)


def test_an_https_attempt_gets_the_node_proxys_http_answer(lab, containerd, tmp_path):
    """What containerd 1.6.32+/1.7.16+/2.x fall back to HTTP on: Go's TLS client reads the node proxy's reply as an
    HTTP response. containerd 1.6.20 has no fallback, so its pull stops there with Go's own words."""
    address = f"localhost:{lab.node_proxy_port}"
    _fresh(lab, tmp_path, "builds/over-https")
    (containerd.hosts_dir / address).mkdir()
    # containerd 1.6.20 ignores a hosts.toml without a [host] table ("invalid `host` tree"): give it one.
    (containerd.hosts_dir / address / "hosts.toml").write_text(
        f'server = "https://{address}"\n\n[host."https://{address}"]\n  capabilities = ["pull", "resolve"]\n')
    try:
        with pytest.raises(grpc.RpcError) as failed:
            containerd.cri.pull(f"{address}/builds/over-https:v1")
        assert "http: server gave HTTP response to HTTPS client" in failed.value.details()
    finally:
        (containerd.hosts_dir / address / "hosts.toml").unlink()
        (containerd.hosts_dir / address).rmdir()
