"""What `meshreg gc` prints of a run: what went, and the read-only window with its parts."""

from __future__ import annotations

from meshreg.cli.output import gc as formats
from meshreg.operations.gc import GcReport

RESULT = {"dryRun": False, "deployment": "registry/workspace-images", "readOnly": "restored", "retention": [],
          "blobs": {"count": 3, "bytes": 3 * 1024 * 1024, "unknownSize": 0}, "untaggedManifests": 0,
          "window": {"readOnlyFrom": 1_800_000_000.0, "readOnlyServing": 1_800_000_009.4,
                     "writableFrom": 1_800_000_011.6}}


def report(**extra) -> GcReport:
    return GcReport(namespace="registry", job="workspace-images-gc-manual-1", state="Complete", result=RESULT,
                    result_error="", **extra)


def test_the_read_only_window_runs_from_the_switch_to_the_registry_serving_writable_again():
    text = formats.text(report(writable_at=1_800_000_024.0))
    assert text.splitlines()[-1] == (
        "registry registry/workspace-images: read-only for 24 s, 08:00:00 to 08:00:24 UTC (restarting read-only 9 s, "
        "garbage-collect 2 s, restarting writable 12 s); writable again")


def test_without_waiting_for_the_rollout_the_window_ends_at_the_switch_back():
    assert formats.text(report()).splitlines()[-1] == (
        "registry registry/workspace-images: read-only for 12 s, 08:00:00 to 08:00:12 UTC (restarting read-only 9 s, "
        "garbage-collect 2 s); writable again")


def test_a_registry_left_read_only_by_an_earlier_job_is_said_first_and_in_json():
    done = report(writable_at=1_800_000_024.0, recovered="registry registry/workspace-images is read-only ...: made "
                                                        "it writable again first")
    assert formats.text(done).splitlines()[0].endswith("made it writable again first")
    assert formats.data(done)["recovered"] == done.recovered and formats.data(done)["writableServing"] == 1800000024.0


def test_a_registry_the_job_could_not_make_writable_is_said_in_capitals():
    stuck = GcReport(namespace="registry", job="j", state="Failed", result={**RESULT, "readOnly": "stuck",
                                                                            "error": "could not ..."}, result_error="")
    assert "registry registry/workspace-images: STILL READ-ONLY" in formats.text(stuck)
