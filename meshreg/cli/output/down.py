"""`meshreg down`'s report as people read it (a line per object comes from output.up), and its --purge question."""

from __future__ import annotations

from meshreg.cli.output.up import summary
from meshreg.operations.down import DownReport, Purge


def question(purge: Purge) -> str:
    """What --purge asks before it deletes the images."""
    return (f"Delete PersistentVolumeClaim {purge.claim} (every image) and namespace(s) {', '.join(purge.namespaces)} "
            f"on {purge.server}?")


def text(report: DownReport) -> str:
    """The summary line."""
    return summary(report.counts, dry_run=False)
