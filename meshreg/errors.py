"""meshreg's own exceptions: the CLI turns each into one line (a config error: one line per problem) and an exit
code."""

from __future__ import annotations

from collections.abc import Sequence


class MeshregError(Exception):
    """Base for every error a user can cause or fix; never shown as a traceback."""

    exit_code = 1

    @property
    def lines(self) -> list[str]:
        """What the CLI prints, one error line each."""
        return [str(self)]


class ConfigError(MeshregError):
    """The config file is missing, unreadable or invalid: one problem, or every problem found in one read."""

    exit_code = 2

    def __init__(self, message: str, *, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems) or [message]

    @classmethod
    def of(cls, problems: Sequence[str]) -> ConfigError:
        """One error for several problems (one line each, in the order given)."""
        return cls("\n".join(problems), problems=problems)

    @property
    def lines(self) -> list[str]:
        return list(self.problems)


class UsageError(MeshregError):
    """Arguments that do not make sense together or are malformed."""

    exit_code = 2


class ClusterError(MeshregError):
    """The cluster refused, failed or could not be reached."""

    exit_code = 1


class Interrupted(MeshregError):
    """Ctrl-C (SIGINT) stopped a command: where it was, what is changed, what to run next; exit 130 (128 + SIGINT),
    as shells report a command stopped by SIGINT."""

    exit_code = 130
