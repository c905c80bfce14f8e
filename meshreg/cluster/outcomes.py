"""What `up` and `down` did (or would do) to each object, and the refusals that stop them before any change."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshreg.cluster.api import Object
from meshreg.cluster.client import describe
from meshreg.cluster.live import Key, key_of
from meshreg.errors import ClusterError


@dataclass(frozen=True)
class Outcome:
    """What happened (or would happen) to one object: created, changed, unchanged, pruned, deleted, absent, kept."""

    kind: str
    namespace: str | None
    name: str
    action: str
    api_version: str = ""
    obj: Object = field(default_factory=dict, compare=False, repr=False)  # the rendered object
    note: str | None = field(default=None, compare=False)  # what the user should know (a storage change)
    checked: bool = field(default=True, compare=False)  # False: the server could not dry-run it (no namespace yet)

    @property
    def key(self) -> Key:
        return (self.api_version, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        return describe(self.kind, self.name, self.namespace)


@dataclass(frozen=True)
class Refusal:
    """An object the API server (or meshreg, for a storage change) refuses; `error` names the object and says why."""

    error: ClusterError

    def __str__(self) -> str:
        return str(self.error)


@dataclass
class Plan:
    """The result of a dry run of a whole render: what would happen to each object, and every refusal."""

    outcomes: list[Outcome] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    versions: dict[Key, str | None] = field(default_factory=dict)  # Outcome.key -> the dry run's resourceVersion

    @property
    def unchecked(self) -> list[Outcome]:
        """Objects in a namespace that does not exist yet: the server could not dry-run them."""
        return [o for o in self.outcomes if not o.checked]


class Refused(ClusterError):
    """The dry run found refusals, so nothing was changed (`rolled_back`: Namespaces created for the check and
    deleted again)."""

    def __init__(self, refusals: Iterable[Refusal], *, rolled_back: Iterable[Outcome] = ()) -> None:
        self.refusals, self.rolled_back = list(refusals), list(rolled_back)
        undone = "".join(f"; {o} was created for the check and is deleted again" for o in self.rolled_back)
        lines = _grouped(self.refusals)
        if len(lines) == 1:
            super().__init__(f"{lines[0]}; nothing was changed{undone}")
        else:
            super().__init__(f"{len(lines)} objects were refused; nothing was changed{undone}:\n"
                             + "\n".join(f"  {line}" for line in lines))


def _grouped(refusals: list[Refusal]) -> list[str]:
    """One line per refusal, objects refused for the very same reason sharing a line."""
    reasons: dict[str, list[str]] = {}
    for refusal in refusals:
        subject, text = str(refusal.error.subject) if hasattr(refusal.error, "subject") else "", str(refusal)
        reason = text[len(subject) + 2:] if subject and text.startswith(f"{subject}: ") else text
        reasons.setdefault(reason, []).append(subject)
    return [f"{', '.join(subjects)}: {reason}" if all(subjects) else reason for reason, subjects in reasons.items()]


class NotOwned(ClusterError):
    """Objects with meshreg's names that another owner holds; `others` maps an owning instance to its objects."""

    def __init__(self, *, others: dict[str, list[str]], unmanaged: list[str]) -> None:
        self.others, self.unmanaged = others, unmanaged
        parts = [f"owned by meshreg instance {who}, left alone: {', '.join(objs)}" for who, objs in others.items()]
        if unmanaged:
            parts.append(f"not managed by meshreg, left alone: {', '.join(unmanaged)}")
        hint = "rerun with --adopt to take over the objects meshreg does not manage" if unmanaged else ""
        super().__init__("; ".join(parts) + "; nothing was applied" + (f" ({hint})" if hint else ""))


def outcome(obj: Object, action: str, **extra: Any) -> Outcome:
    """What happened (or would happen) to a rendered object."""
    api_version, kind, namespace, name = key_of(obj)
    return Outcome(kind=kind, namespace=namespace, name=name, action=action, api_version=api_version, obj=obj,
                   **extra)


def named(obj: Object) -> str:
    """`Deployment meshreg/registry`: a rendered object as every message names it."""
    _, kind, namespace, name = key_of(obj)
    return describe(kind, name, namespace)
