"""What one `meshreg verify` run reports: a verdict per expectation, notes on what it removed or left, and the node
its node probes ran on."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshreg.verify.results import PASS, SKIP, Verdict

INTERRUPTED = 130  # the shell's exit code for a command stopped by SIGINT


@dataclass
class VerifyReport:
    """Filled in while the run goes (verdicts phase by phase, notes as probes are removed)."""

    server: str
    run: str  # the run's id, in every probe's name and label
    namespace: str  # the run's temporary namespace
    registries: tuple[str, ...]  # the registries it checked, in the config's order
    node: str | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C or SIGTERM stopped it; the notes say what was removed

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.verdict in (PASS, SKIP) for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return INTERRUPTED
        return 0 if self.ok else 1
