"""The runtime config script, run as its container runs it (the rendered ConfigMap and environment) against a temp
directory standing in for the runtime's, under dash and under busybox's sh (the image's shell)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from meshreg import config
from meshreg.render import render
from support import runtime_config_pod as pod
from support.configs import minimal

SHELLS = [pytest.param("sh", id="sh"),
          pytest.param("busybox sh", id="busybox", marks=pytest.mark.skipif(
              not shutil.which("busybox"), reason="busybox is not installed (apt-get install -y busybox)"))]
MARKER = ".meshreg.meshreg.dev"
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _stop_what_tests_start():
    yield
    while _STARTED:
        pod = _STARTED.pop()
        if pod.poll() is None:
            pod.kill()
            pod.wait()


def config_text(*ports: int) -> str:
    regs = "".join(f"    - {{name: r{p}, port: {p}{', default: true' if i == 0 else ''}}}\n"
                   for i, p in enumerate(ports))
    return minimal(f"  nodeProxy:\n    runtimeConfig: {{containerd: {{enabled: true}}}}\n  registries:\n{regs}")


class Node:
    """A runtime directory and the runtime config pod's view of one render, run with `shell` as owner `owner`."""

    def __init__(self, tmp_path, shell: str, *ports: int, owner: str = "pod-a", target=None):
        self.objects = render(config.from_text(config_text(*ports), name="m.yaml"))
        self.mount = tmp_path / f"mount-{owner}-{'-'.join(map(str, ports))}"
        pod.project(self.objects, self.mount)
        self.target = target or tmp_path / "certs.d"
        self.target.mkdir(exist_ok=True)
        self.shell = shell
        self.env = pod.environment(self.objects, "containerd", mount=self.mount, target=self.target,
                                         owner=owner)

    def run(self, command: str) -> subprocess.CompletedProcess:
        return pod.run(self.mount, self.env, command, shell=self.shell)

    def start(self) -> subprocess.Popen:
        """`run`, as the container's command, passing once a second; its log goes to self.log."""
        env = {**os.environ, **self.env, "MESHREG_INTERVAL": "1"}
        self.log = self.mount.parent / f"{self.mount.name}.log"
        with open(self.log, "w") as log:
            pod = subprocess.Popen([*self.shell.split(), str(self.mount / "runtime-config.sh"), "run"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        _STARTED.append(pod)
        return pod


def tree(directory) -> dict[str, bytes | None]:
    """Every entry below `directory`: files with their bytes, directories as None."""
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(directory.rglob("*"))}


def stats(directory) -> dict[str, tuple]:
    return {str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in directory.rglob("*")}


@pytest.mark.parametrize("shell", SHELLS)
def test_sync_writes_each_hosts_toml_and_a_marker_listing_them(tmp_path, shell):
    node = Node(tmp_path, shell, 5000)
    done = node.run("sync")
    assert done.returncode == 0, done.stderr
    files = tree(node.target)
    assert files["localhost:5000/hosts.toml"] == (node.mount / "containerd/localhost:5000/hosts.toml").read_bytes()
    assert "127.0.0.1:5000/hosts.toml" in files
    assert files[MARKER].decode().splitlines()[1:] == [
        "owner pod-a", "dir localhost:5000", "dir 127.0.0.1:5000", "file localhost:5000/hosts.toml",
        "file 127.0.0.1:5000/hosts.toml"]
    assert (node.target / "localhost:5000/hosts.toml").stat().st_mode & 0o777 == 0o644
    assert node.run("check").returncode == 0


@pytest.mark.parametrize("shell", SHELLS)
def test_a_second_sync_rewrites_nothing(tmp_path, shell):
    node = Node(tmp_path, shell, 5000, 5001)
    assert node.run("sync").returncode == 0
    before, contents = stats(node.target), tree(node.target)
    time.sleep(0.05)
    again = node.run("sync")
    assert again.returncode == 0 and again.stderr == ""  # nothing written, nothing to say
    assert stats(node.target) == before and tree(node.target) == contents


@pytest.mark.parametrize("shell", SHELLS)
def test_other_files_in_the_directory_are_never_touched(tmp_path, shell):
    node = Node(tmp_path, shell, 5000)
    (node.target / "docker.io").mkdir()
    (node.target / "docker.io/hosts.toml").write_text('server = "https://registry-1.docker.io"\n')
    (node.target / "_default").mkdir()
    others = tree(node.target)
    assert node.run("sync").returncode == 0
    assert node.run("remove").returncode == 0
    assert tree(node.target) == others


@pytest.mark.parametrize("shell", SHELLS)
def test_a_port_that_goes_away_takes_exactly_its_files_with_it(tmp_path, shell):
    assert Node(tmp_path, shell, 5000, 5001, owner="pod-a").run("sync").returncode == 0
    kept = {k: v for k, v in tree(tmp_path / "certs.d").items() if "5001" not in k and k != MARKER}
    later = Node(tmp_path, shell, 5000, owner="pod-b")  # the next rollout's pod, with one port fewer
    done = later.run("sync")
    assert done.returncode == 0, done.stderr
    assert "removed" in done.stderr and "5001/hosts.toml" in done.stderr
    assert {k: v for k, v in tree(later.target).items() if k != MARKER} == kept


@pytest.mark.parametrize("shell", SHELLS)
def test_someone_elses_hosts_toml_is_left_alone_and_reported(tmp_path, shell):
    node = Node(tmp_path, shell, 5000)
    (node.target / "localhost:5000").mkdir()
    theirs = b'server = "https://localhost:5000"\n'
    (node.target / "localhost:5000/hosts.toml").write_bytes(theirs)
    done = node.run("sync")
    assert done.returncode == 1
    assert "left alone: " in done.stderr and "localhost:5000/hosts.toml" in done.stderr
    assert (node.target / "localhost:5000/hosts.toml").read_bytes() == theirs
    assert (node.target / "127.0.0.1:5000/hosts.toml").exists()  # the rest is still set up
    check = node.run("check")
    assert check.returncode == 1 and "localhost:5000/hosts.toml is not in place" in check.stdout
    assert node.run("remove").returncode == 0
    assert tree(node.target) == {"localhost:5000": None, "localhost:5000/hosts.toml": theirs}


@pytest.mark.parametrize("shell", SHELLS)
def test_a_file_that_already_has_the_wanted_content_is_adopted(tmp_path, shell):
    node = Node(tmp_path, shell, 5000)
    (node.target / "localhost:5000").mkdir()
    shutil.copy(node.mount / "containerd/localhost:5000/hosts.toml", node.target / "localhost:5000/hosts.toml")
    assert node.run("sync").returncode == 0 and node.run("check").returncode == 0
    assert "file localhost:5000/hosts.toml" in (node.target / MARKER).read_text()
    assert "dir localhost:5000" not in (node.target / MARKER).read_text()  # it was there before: not ours


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stopping_pod_removes_what_it_wrote(tmp_path, shell):
    node = Node(tmp_path, shell, 5000)
    (node.target / "docker.io").mkdir()
    pod = node.start()
    _wait_for(lambda: node.run("check").returncode == 0)
    pod.send_signal(signal.SIGTERM)
    assert pod.wait(timeout=10) == 0
    assert tree(node.target) == {"docker.io": None}


@pytest.mark.parametrize("shell", SHELLS)
def test_a_stopping_pod_leaves_the_files_to_the_newer_pod_that_took_over(tmp_path, shell):
    old = Node(tmp_path, shell, 5000, owner="pod-old")
    pod = old.start()
    _wait_for(lambda: old.run("check").returncode == 0)
    new = Node(tmp_path, shell, 5000, owner="pod-new")
    assert new.run("sync").returncode == 0  # the rollout's new pod starts first (maxSurge)
    _wait_for(lambda: "a newer pod owns" in old.log.read_text())
    pod.send_signal(signal.SIGTERM)
    assert pod.wait(timeout=10) == 0
    assert new.run("check").returncode == 0 and old.run("check").returncode == 1
    assert new.run("remove").returncode == 0 and tree(new.target) == {}


@pytest.mark.parametrize("shell", SHELLS)
def test_remove_by_another_pod_changes_nothing_but_purge_does(tmp_path, shell):
    owner = Node(tmp_path, shell, 5000, owner="pod-a")
    assert owner.run("sync").returncode == 0
    written = tree(owner.target)
    stranger = Node(tmp_path, shell, 5000, owner="pod-z")
    assert stranger.run("remove").returncode == 0 and tree(owner.target) == written
    assert stranger.run("purge").returncode == 0 and tree(owner.target) == {}


@pytest.mark.parametrize("shell", SHELLS)
def test_a_missing_runtime_directory_is_an_error_not_a_silent_success(tmp_path, shell):
    node = Node(tmp_path, shell, 5000)
    node.env["MESHREG_TARGET"] = str(tmp_path / "nowhere")
    done = node.run("sync")
    assert done.returncode == 2 and "is not a directory" in done.stderr


def _wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
