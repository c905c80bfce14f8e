"""`meshreg gc` for people (what retention deleted and garbage-collect reclaimed) and for -o json."""

from __future__ import annotations

import time
from typing import Any

from meshreg.cli.output.document import document
from meshreg.cluster.gc import GcResult, Window
from meshreg.operations.gc import GcReport, JobStarted

__all__ = ["data", "describe", "failure", "size", "started", "text"]


def started(job: JobStarted) -> str:
    """The line said as soon as the Job exists."""
    return f"created Job {job.namespace}/{job.job} from CronJob {job.cron}"


def data(report: GcReport) -> dict[str, Any]:
    """The `kind: GcReport` document (docs/output.md): the Job, how it ended, and its result (or why it is
    missing); when the registry served writable again (seconds since the epoch: the read-only window's end), and an
    earlier Job's read-only switch withdrawn first."""
    return document("GcReport", {
        "registry": report.registry, "namespace": report.namespace, "job": report.job, "dryRun": report.dry_run,
        "state": report.state, "ok": report.ok, "result": report.result,
        "resultError": report.result_error if report.result is None else None,
        "writableServing": None if report.writable_at is None else round(report.writable_at, 3),
        "recovered": report.recovered})


def text(report: GcReport) -> str:
    """The result for people, or where to look when it cannot be read."""
    first = [report.recovered] if report.recovered else []
    if report.result is None:
        return "\n".join([*first, f"Job {report.job}: {report.state}; its result cannot be read "
                                   f"({report.result_error}); try kubectl -n {report.namespace} logs "
                                   f"job/{report.job} -c gc"])
    return "\n".join([*first, *describe(report.result, writable_at=report.writable_at)])


def failure(report: GcReport) -> str:
    """The error of a Job that failed: where its logs are."""
    return f"Job {report.namespace}/{report.job} failed: kubectl -n {report.namespace} logs job/{report.job} " \
           "--all-containers"


def size(n: float) -> str:
    """Bytes for people: 512 B, 1.5 KiB, ... up to GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def describe(result: GcResult, *, writable_at: float | None = None) -> list[str]:
    """The result line of a gc Job, for people (`writable_at`: when the registry served writable again)."""
    dry = bool(result.get("dryRun"))
    return [*_retention(result, dry=dry), *_untagged(result, dry=dry), *_blobs(result, dry=dry),
            *_registry(result, writable_at), *([f"error: {result['error']}"] if result.get("error") else [])]


def _retention(result: GcResult, *, dry: bool) -> list[str]:
    lines = [f"retention: {entry['repository']}: {'would delete' if dry else 'deleted'} "
             f"{', '.join(entry['tags']) or 'no tags'} ({len(entry['manifests'])} manifests)"
             for entry in result.get("retention") or []]
    if not result.get("retention"):
        lines.append("retention: nothing to delete" if "blobs" in result or dry else "retention: not run")
    return lines


def _untagged(result: GcResult, *, dry: bool) -> list[str]:
    lines = [f"untagged manifests: {result['untaggedManifests']} {'would be ' if dry else ''}deleted"] \
        if result.get("untaggedManifests") else []
    return lines + [f"untagged manifest kept: {kept} (a tagged index lists it; distribution 2.8's "
                    "--delete-untagged would break that image)" for kept in result.get("untaggedKept") or []]


def _blobs(result: GcResult, *, dry: bool) -> list[str]:
    blobs = result.get("blobs")
    if blobs is None:
        return []
    unknown = f" (+{blobs['unknownSize']} of unknown size)" if blobs.get("unknownSize") else ""
    return [f"garbage-collect: {blobs['count']} blobs {'would be deleted' if dry else 'deleted'}, "
            f"{size(blobs['bytes'])}{unknown} {'would be reclaimed' if dry else 'reclaimed'}"]


def _registry(result: GcResult, writable_at: float | None) -> list[str]:
    read_only = result.get("readOnly")
    if not read_only:
        return []
    name = f"registry {result.get('deployment', '')}"
    if read_only == "stuck":
        return [f"{name}: STILL READ-ONLY"]
    window = window_text(result.get("window") or {}, writable_at)
    return [f"{name}: " + (f"read-only {window}; writable again" if window else "read-only while collecting, "
                                                                                   "writable again")]


def window_text(window: Window, writable_at: float | None) -> str:
    """`for 23 s, 12:00:03 to 12:00:26 UTC (restarting read-only 9 s, garbage-collect 2 s, restarting writable 12 s)`:
    from the switch to read-only to the registry serving writable again (or, not waited for, to the switch back)."""
    start, back = window.get("readOnlyFrom"), window.get("writableFrom")
    if start is None or back is None:
        return ""
    end = writable_at or back
    serving = window.get("readOnlyServing")
    phases = [] if serving is None else [f"restarting read-only {serving - start:.0f} s",
                                         f"garbage-collect {back - serving:.0f} s"]
    if writable_at is not None:
        phases.append(f"restarting writable {end - back:.0f} s")
    detail = f" ({', '.join(phases)})" if phases else ""
    return f"for {end - start:.0f} s, {_clock(start)} to {_clock(end)} UTC{detail}"


def _clock(moment: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(round(moment)))
