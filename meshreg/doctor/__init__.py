"""`meshreg doctor`: read-only checks of the cluster meshreg lands on, one OK/WARN/FAIL line each with what to do.

Each check group is a module with `check(facts) -> list[Result]`; `run` calls them all at once (they only read, and
share what they read through Facts), reports them in order, and turns a group that cannot read what it needs into
one WARN "could not check" line instead of an error. `PREFLIGHT` names the groups
that can FAIL before anything is deployed: `up` runs those.
"""

from __future__ import annotations

from meshreg.doctor.checks import GROUPS, PREFLIGHT, Unreachable, run
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import (
                                    FAIL,
                                    OK,
                                    WARN,
                                    DoctorReport,
                                    Result,
                                    could_not,
                                    counts,
                                    exit_code,
                                    fail,
                                    failed,
                                    ok,
                                    some,
                                    warn,
)

__all__ = ["FAIL", "GROUPS", "OK", "PREFLIGHT", "WARN", "DoctorReport", "Facts", "Result", "Unreachable", "could_not",
           "counts", "exit_code", "fail", "failed", "ok", "run", "some", "warn"]
