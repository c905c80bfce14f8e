"""The runtime-config DaemonSet on the real node (spec.nodeProxy.runtimeConfig, containerd): it writes hosts.toml
files for the node-proxy port into the directory it is given, a real containerd reading that directory as its
config_path pulls through the node proxy with them, and `meshreg down` takes exactly those files away again.

The directory is a scratch one (a private containerd's config_path), never the lab node's own certs.d, which the
lab.local image hub needs; that one is checked to be untouched."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from support import realstack
from support.lab.containerd import Containerd, unavailable
from support.realstack_pods import MeshPod

PORT = 5114
HOSTS = (f"localhost:{PORT}", f"127.0.0.1:{PORT}")
WRITER = "rs-rtc-builds/kaniko"


def config(directory: Path, busybox: str) -> str:
    return f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: rs-rtc}}
spec:
  namespace: rs-rtc
  nodeProxy:
    port: {PORT}
    runtimeConfig:
      containerd: {{enabled: true, configPath: {directory}}}
      image: {busybox}
  localRegistryHosting: {{publish: false}}
  writers: [{{serviceAccount: {WRITER}}}]
"""


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def containerd():
    why = unavailable()
    if why:
        pytest.skip(why)
    root = realstack.DATA / "rs-rtc-containerd"
    runtime = Containerd(root)
    yield runtime
    runtime.close()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def lab_hosts(stack):
    """The lab node's own certs.d (the image hub's hosts.toml), as it was before."""
    return snapshot(stack.lab_node / "certs.d")


@pytest.fixture(scope="module")
def instance(stack, workdir, containerd, lab_hosts):
    text = config(containerd.hosts_dir, stack.busybox_image)
    with realstack.deployed(stack, workdir, text, accounts=(WRITER,)) as found:
        found.stack.wait("condition=Ready", "pod", selector="app.kubernetes.io/name=runtime-config",
                         namespace=found.namespace)
        yield found


def test_the_daemonset_writes_a_hosts_toml_for_each_name_of_the_port(instance, containerd):
    for host in HOSTS:
        text = (containerd.hosts_dir / host / "hosts.toml").read_text()
        assert f'server = "http://{host}"' in text and 'capabilities = ["pull", "resolve"]' in text
    assert (containerd.hosts_dir / ".meshreg.rs-rtc.rs-rtc").exists()  # what it wrote, to remove exactly that


def test_status_says_the_runtime_config_is_ready(instance):
    found = instance.json("status")["runtimeConfig"]
    assert found["enabled"] and found["ready"], found


def test_a_real_containerd_reading_them_pulls_through_the_node_proxy(stack, instance, containerd):
    with MeshPod(stack, "rs-rtc-builds", "kaniko", service_account="kaniko") as writer:
        pushed = writer.probe("w push http://registry.rs-rtc.svc.cluster.local:5000 apps/web")["w"]
    start = len(containerd.log_text())
    ref = f"localhost:{PORT}/apps/web@{pushed['digest']}"
    assert containerd.cri.pull(ref)
    log = containerd.log_text()[start:]
    where = re.escape(f"{containerd.hosts_dir}/localhost:{PORT}")
    assert re.search(rf'msg="loading host directory" dir="?{where}"?$', log, re.M), log[-2000:]
    assert "failed to decode hosts.toml" not in log
    containerd.cri.remove(ref)


def test_down_takes_exactly_its_files_away_and_the_lab_nodes_own_are_untouched(stack, instance, containerd,
                                                                               lab_hosts):
    (containerd.hosts_dir / "example.com").mkdir(exist_ok=True)
    (containerd.hosts_dir / "example.com" / "hosts.toml").write_text('server = "https://example.com"\n')
    instance.meshreg("down")
    deadline = time.monotonic() + 90
    while (containerd.hosts_dir / HOSTS[0]).exists() and time.monotonic() < deadline:
        time.sleep(2)
    assert sorted(snapshot(containerd.hosts_dir)) == ["example.com/hosts.toml"]  # someone else's file stays
    assert snapshot(stack.lab_node / "certs.d") == lab_hosts
