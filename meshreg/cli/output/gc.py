"""`meshreg gc` for people (what retention deleted and garbage-collect reclaimed) and for -o json."""

from __future__ import annotations

from typing import Any

from meshreg.cli.output.document import document
from meshreg.cluster.gc import GcResult
from meshreg.operations.gc import GcReport, JobStarted

__all__ = ["data", "describe", "failure", "size", "started", "text"]


def started(job: JobStarted) -> str:
    """The line said as soon as the Job exists."""
    return f"created Job {job.namespace}/{job.job} from CronJob {job.cron}"


def data(report: GcReport) -> dict[str, Any]:
    """The `kind: GcReport` document (docs/output.md): the Job, how it ended, and its result (or why it is
    missing)."""
    return document("GcReport", {
        "registry": report.registry, "namespace": report.namespace, "job": report.job, "dryRun": report.dry_run,
        "state": report.state, "ok": report.ok, "result": report.result,
        "resultError": report.result_error if report.result is None else None})


def text(report: GcReport) -> str:
    """The result for people, or where to look when it cannot be read."""
    if report.result is None:
        return (f"Job {report.job}: {report.state}; its result cannot be read ({report.result_error}); "
                f"try kubectl -n {report.namespace} logs job/{report.job} -c gc")
    return "\n".join(describe(report.result))


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


def describe(result: GcResult) -> list[str]:
    """The result line of a gc Job, for people."""
    dry = bool(result.get("dryRun"))
    return [*_retention(result, dry=dry), *_untagged(result, dry=dry), *_blobs(result, dry=dry),
            *_registry(result), *([f"error: {result['error']}"] if result.get("error") else [])]


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


def _registry(result: GcResult) -> list[str]:
    read_only = result.get("readOnly")
    if not read_only:
        return []
    state = {"restored": "read-only while collecting, writable again", "stuck": "STILL READ-ONLY"}
    return [f"registry {result.get('deployment', '')}: {state.get(read_only, read_only)}"]
