"""A full registry volume: status and doctor say so with the figures and how to free space, and a full volume makes
the registry unhealthy (status exits 1) while a nearly full one only warns. Seen on the lab: a push to a full volume
fails with HTTP 500 from the registry (tests/realstack/test_faults_full.py)."""

from __future__ import annotations

import pytest

from meshreg.cli.output.status import registry_lines
from meshreg.doctor import deployed
from meshreg.status.judge import registry_healthy, registry_running, volume_fill
from meshreg.status.report import Mtls, RegistryEntry, VolumeUsage

MiB = 1 << 20


def entry(used: int | None, capacity: int | None = 64 * MiB) -> RegistryEntry:
    return RegistryEntry(name="registry", role="images", default=True, ready=True, replicas="1/1", pods=1,
                         with_sidecar=1, in_ambient=None, mtls=Mtls("STRICT", "STRICT", None, None), writers=(),
                         endpoints=1, addresses=None, problems=(), storage="volume", gc=None,
                         volume=VolumeUsage(used_bytes=used, capacity_bytes=capacity))


@pytest.mark.parametrize(("used", "fill"), [(0, None), (57 * MiB, None), (58 * MiB, "nearly full"),
                                            (62 * MiB, "nearly full"), (63 * MiB, "full"), (64 * MiB, "full")])
def test_a_volume_is_full_from_98_percent_and_nearly_full_from_90(used, fill):
    assert volume_fill(entry(used).volume) == fill


def test_no_figures_is_not_full():
    assert volume_fill(None) is None
    assert volume_fill(entry(None).volume) is None and volume_fill(entry(5, None).volume) is None
    assert volume_fill(entry(0, 0).volume) is None


def test_a_full_volume_makes_the_registry_unhealthy_but_it_still_runs():
    assert registry_running(entry(64 * MiB)) and not registry_healthy(entry(64 * MiB))
    assert registry_healthy(entry(60 * MiB)) and registry_healthy(entry(None))


def test_status_says_full_with_the_share_what_fails_and_how_to_free_space():
    [line] = [line for line in registry_lines(entry(64 * MiB), several=False) if "volume:" in line]
    assert line.strip() == ("volume: 64.0 MiB used of 64.0 MiB (100%): FULL: pushes fail (the registry answers HTTP "
                            "500, `no space left on device` in its log); what is stored still pulls; free space with "
                            "meshreg gc (retention and deleteUntagged), or grow the volume")
    [line] = [line for line in registry_lines(entry(60 * MiB), several=False) if "volume:" in line]
    assert line.strip().endswith("(94%): nearly full: pushes fail once it is full; free space with meshreg gc "
                                 "(retention and deleteUntagged), or grow the volume")
    [line] = [line for line in registry_lines(entry(32 * MiB), several=False) if "volume:" in line]
    assert line.strip() == "volume: 32.0 MiB used of 64.0 MiB"


def test_doctor_fails_a_full_volume_warns_a_nearly_full_one_and_shows_the_usage_of_any_other():
    [full] = deployed._volume(entry(64 * MiB))
    assert (full.status, full.message, full.fix) == (
        "FAIL", "registry registry volume: 64.0 MiB used of 64.0 MiB (100%): full, pushes fail (HTTP 500 from the "
                "registry)", "free space with meshreg gc (retention and deleteUntagged), or grow the volume")
    [nearly] = deployed._volume(entry(60 * MiB))
    assert nearly.status == "WARN" and nearly.message.endswith("(94%): nearly full")
    [room] = deployed._volume(entry(3 * (1 << 30), 10 * (1 << 30)))
    assert (room.status, room.message) == ("OK", "registry registry volume: 3.0 GiB used of 10.0 GiB (30%)")
    assert deployed._volume(entry(None)) == []
