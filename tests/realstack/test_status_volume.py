"""`meshreg status` on the real node: a `local` PersistentVolume on a size-limited tmpfs is measured by the kubelet
(statfs), so status shows what a push really used of its capacity; a hostPath volume is not measured, and status
says so, naming the volume. The kubelet refreshes volume figures about every minute: the tests wait for them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from support import realstack
from support.realstack_pods import MeshPod

WRITER = "rs-vol-builds/kaniko"


def config(name: str, port: int) -> str:
    return f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: {name}}}
spec:
  namespace: {name}
  nodeProxy: {{port: {port}}}
  localRegistryHosting: {{publish: false}}
  registry:
    storage: {{size: 64Mi}}
  writers: [{{serviceAccount: {WRITER}}}]
"""


def volume_entry(instance: realstack.Instance, settled: Any, timeout: float = 150) -> dict:
    """status's volume entry once `settled(entry)` holds (the kubelet measures about every minute)."""
    deadline = time.monotonic() + timeout
    while True:
        entry = instance.json("status", check=False)["registries"][0]["volume"]
        if settled(entry) or time.monotonic() > deadline:
            return entry
        time.sleep(5)


@pytest.fixture(scope="module")
def measured(stack, workdir):
    with realstack.deployed(stack, workdir / "local", config("rs-vol-local", 5110), volume="local",
                            accounts=(WRITER,)) as found:
        yield found


@pytest.fixture(scope="module")
def unmeasured(stack, workdir):
    with realstack.deployed(stack, workdir / "hostpath", config("rs-vol-hostpath", 5111)) as found:
        yield found


def test_a_local_volume_on_tmpfs_shows_what_a_push_used_of_its_capacity(stack, measured):
    with MeshPod(stack, "rs-vol-builds", "kaniko", service_account="kaniko") as writer:
        writer.push_blob("http://registry.rs-vol-local.svc.cluster.local:5000", "apps/big", mib=8)
    entry = volume_entry(measured, lambda e: (e.get("usedBytes") or 0) >= 8 << 20)
    assert entry["capacityBytes"] == 64 << 20, entry  # the tmpfs size= limit, as statfs reports it
    assert 8 << 20 <= entry["usedBytes"] < 16 << 20, entry
    text = measured.meshreg("status", check=False).stdout
    line = next(x for x in text.splitlines() if x.startswith("volume:"))
    assert line.endswith("used of 64.0 MiB") and " MiB used" in line, line


def test_a_hostpath_volume_is_said_to_be_unmeasured(unmeasured):
    entry = volume_entry(unmeasured, lambda e: "hostPath" in (e.get("reason") or ""))
    assert entry == {"usedBytes": None, "capacityBytes": None, "reason": (
        f"PersistentVolume {unmeasured.volumes[0].name} is a hostPath volume, which the kubelet does not measure")}
    text = unmeasured.meshreg("status", check=False).stdout
    assert f"volume: usage unknown: PersistentVolume {unmeasured.volumes[0].name} is a hostPath volume" in text
