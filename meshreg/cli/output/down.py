"""`meshreg down`'s report as people read it (a line per object comes from output.up), and its --purge question."""

from __future__ import annotations

from typing import Any

from meshreg.cli.output.document import document
from meshreg.cli.output.up import outcome_data, summary
from meshreg.operations.down import DownReport, Purge


def question(purge: Purge) -> str:
    """What --purge asks before it deletes the images."""
    return (f"Delete PersistentVolumeClaim {purge.claim} (every image) and namespace(s) {', '.join(purge.namespaces)} "
            f"on {purge.server}?")


def text(report: DownReport) -> str:
    """The summary line."""
    return summary(report.counts, dry_run=False)


def data(report: DownReport) -> dict[str, Any]:
    """The `kind: DownReport` document (docs/output.md): what happened to each object."""
    return document("DownReport", {"server": report.server, "counts": report.counts,
                                   "objects": [outcome_data(o) for o in report.outcomes], "note": report.note})
