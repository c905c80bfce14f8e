"""`meshreg verify`'s report as people read it (EXPECTATION / OBSERVED / VERDICT) and as -o json prints it."""

from __future__ import annotations

import textwrap
from typing import Any

from meshreg.cli.output.document import document
from meshreg.verify import FAIL, VerifyReport

OBSERVED_WIDTH = 60


def text(report: VerifyReport) -> str:
    """EXPECTATION / OBSERVED / NODE (where its probe ran) / VERDICT (long observations wrapped in their column),
    then what was cleaned up or left behind."""
    rows = _rows(report)
    width = max([len(r[0]) for r in rows] + [len("EXPECTATION")])
    seen = min(max([len(r[1]) for r in rows] + [len("OBSERVED")]), OBSERVED_WIDTH)
    where = max([len(r[2]) for r in rows] + [len("NODE")])
    lines = [f"{'EXPECTATION':<{width}}  {'OBSERVED':<{seen}}  {'NODE':<{where}}  VERDICT"]
    for expectation, observed, node, verdict in rows:
        lines += _row(expectation, observed, widths=(width, seen, where), node=node, verdict=verdict)
    held = sum(1 for v in report.verdicts if v.verdict != FAIL)
    lines.append(f"{held} of {len(report.verdicts)} expectations held (node-proxy and kubelet probes on "
                 f"{report.node}, run {report.run})")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def _rows(report: VerifyReport) -> list[tuple[str, str, str, str]]:
    """(expectation, observed, node, verdict) of each verdict; with several registries each names its registry."""
    several = len(report.registries) > 1
    return [(("[" + v.registry + "] " if several else "") + f"{v.expectation} → {v.expected}", v.observed,
             v.node or "-", v.verdict) for v in report.verdicts]


def _row(expectation: str, observed: str, *, widths: tuple[int, int, int], node: str, verdict: str) -> list[str]:
    """One row: the observation wrapped in its column, the node and verdict beside its first line."""
    width, seen, where = widths
    parts = textwrap.wrap(observed, seen, break_on_hyphens=False) or [""]
    return [f"{expectation:<{width}}  {parts[0]:<{seen}}  {node:<{where}}  {verdict}",
            *(f"{'':<{width}}  {part}" for part in parts[1:])]


def data(report: VerifyReport) -> dict[str, Any]:
    """The `kind: VerifyReport` document (docs/output.md)."""
    return document("VerifyReport", {
        "server": report.server, "run": report.run, "node": report.node, "registries": list(report.registries),
        "ok": report.ok, "expectations": [v.as_dict() for v in report.verdicts], "notes": list(report.notes)})


def interruption(report: VerifyReport) -> list[str]:
    """What an interrupted run says (on stderr): what it removed or left, then that it was interrupted."""
    return [*report.notes, "interrupted"]
