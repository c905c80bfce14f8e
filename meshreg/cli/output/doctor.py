"""`meshreg doctor`'s report as people read it (a line per result, the fix under it) and as -o json prints it."""

from __future__ import annotations

from typing import Any

from meshreg.cli.output.document import document
from meshreg.doctor import FAIL, OK, WARN, DoctorReport


def text(report: DoctorReport) -> str:
    """The header, one line per result with the fix indented under it, and a summary line."""
    width = max([len(r.check) for r in report.results] + [8])
    lines = [f"meshreg doctor: {report.server} (config {report.config}, namespace {report.namespace})"]
    for r in report.results:
        lines.append(f"{r.status:<4}  {r.check:<{width}}  {r.message}")
        if r.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {r.fix}")
    n = report.counts
    lines.append(f"{n[OK]} OK, {n[WARN]} WARN, {n[FAIL]} FAIL")
    return "\n".join(lines)


def data(report: DoctorReport) -> dict[str, Any]:
    """The `kind: DoctorReport` document (docs/output.md)."""
    return document("DoctorReport", {
        "server": report.server, "config": report.config, "namespace": report.namespace, "ok": report.ok,
        "counts": report.counts, "results": [r.as_dict() for r in report.results]})
