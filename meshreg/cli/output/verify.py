"""`meshreg verify`'s report as people read it (EXPECTATION / OBSERVED / VERDICT) and as -o json prints it."""

from __future__ import annotations

import textwrap
from typing import Any

from meshreg.verify import FAIL, VerifyReport

OBSERVED_WIDTH = 60


def text(report: VerifyReport) -> str:
    """EXPECTATION / OBSERVED / VERDICT (long observations wrapped in their column), then what was cleaned up or
    left behind."""
    several = len(report.registries) > 1
    rows = [(("[" + v.registry + "] " if several else "") + f"{v.expectation} → {v.expected}", v.observed, v.verdict)
            for v in report.verdicts]
    width = max([len(r[0]) for r in rows] + [len("EXPECTATION")])
    seen = min(max([len(r[1]) for r in rows] + [len("OBSERVED")]), OBSERVED_WIDTH)
    lines = [f"{'EXPECTATION':<{width}}  {'OBSERVED':<{seen}}  VERDICT"]
    for expectation, observed, verdict in rows:
        lines += _row(expectation, observed, width=width, seen=seen, verdict=verdict)
    held = sum(1 for v in report.verdicts if v.verdict != FAIL)
    lines.append(f"{held} of {len(report.verdicts)} expectations held (probes on node {report.node}, run "
                 f"{report.run})")
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def _row(expectation: str, observed: str, *, width: int, seen: int, verdict: str) -> list[str]:
    """One row: the observation wrapped in its column, the verdict beside its first line."""
    parts = textwrap.wrap(observed, seen, break_on_hyphens=False) or [""]
    return [f"{expectation:<{width}}  {parts[0]:<{seen}}  {verdict}", *(f"{'':<{width}}  {part}" for part in parts[1:])]


def data(report: VerifyReport) -> dict[str, Any]:
    return {"server": report.server, "run": report.run, "node": report.node,
            "expectations": [v.as_dict() for v in report.verdicts], "notes": report.notes, "ok": report.ok}


def interruption(report: VerifyReport) -> list[str]:
    """What an interrupted run says (on stderr): what it removed or left, then that it was interrupted."""
    return [*report.notes, "interrupted"]
