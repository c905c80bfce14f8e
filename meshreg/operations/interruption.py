"""What `up` and `down` say when Ctrl-C stops them: the phase they were in, what that leaves in the cluster, and what
to run next. Either is safe to stop anywhere: everything written carries the instance's ApplySet labels (its parent
is written before any member), so running the same command again converges, and the images' claim is kept."""

from __future__ import annotations

from meshreg.cluster.apply import APPLY, DRY_RUN, PRUNE
from meshreg.errors import Interrupted

__all__ = ["CHECKS", "DELETE", "ENFORCEMENT", "FILES", "READ", "WAIT", "Phase"]

CHECKS, WAIT, ENFORCEMENT = "checks", "wait", "enforcement"  # up's phases besides the apply's
READ, DELETE, FILES = "read", "delete", "files"  # down's

_UP = {
    CHECKS: "during the checks, before anything was changed",
    DRY_RUN: "during the server's dry run, before anything was changed (a namespace created for it is deleted "
             "again)",
    APPLY: "while applying: some objects are applied, the others not yet; what is applied is labelled as this "
           "instance's and the images' claim is kept",
    PRUNE: "while pruning what the config no longer renders: every object is applied, some of those are still there",
    WAIT: "while waiting for the rollout: every object is applied; the rollout goes on without meshreg (meshreg "
          "status shows it)",
    ENFORCEMENT: "while checking that Istio enforces on every pod: every object is applied (meshreg status checks "
                 "it)",
}
_DOWN = {
    READ: "before anything was deleted",
    DELETE: "while deleting: some objects are deleted, the others not yet",
    FILES: "while the runtime config's pods remove their files from the nodes: every object is deleted",
}


class Phase:
    """The phase a command is in (`up` or `down`), told by the command as each starts."""

    def __init__(self, command: str, first: str, *, purge: bool = False) -> None:
        self.command, self.current, self.purge = command, first, purge

    def __call__(self, phase: str) -> None:
        self.current = phase

    def interrupted(self) -> Interrupted:
        """The one line a Ctrl-C prints: where it stopped and what to run next."""
        if self.command == "up" and self.current in (CHECKS, DRY_RUN):
            return Interrupted(f"interrupted {_UP[self.current]}; run meshreg up again")
        if self.command == "up":
            return Interrupted(f"interrupted {_UP[self.current]}; run meshreg up again to finish (it converges), or "
                               "meshreg down to remove what it applied")
        again = "meshreg down --purge" if self.purge else "meshreg down"
        if self.current == READ:
            return Interrupted(f"interrupted {_DOWN[READ]}; run {again} again")
        kept = "" if self.purge else "; the images' claim and its namespace are kept"
        return Interrupted(f"interrupted {_DOWN[self.current]}{kept}; run {again} again to finish, or meshreg up "
                           "to put everything back")
