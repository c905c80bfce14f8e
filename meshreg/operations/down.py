"""`meshreg down`: remove what `up` applied, in reverse order, keeping the images (the PVC and its namespace) unless
purged; then wait for the runtime config's pods to remove their files from the nodes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from meshreg import render as rendering
from meshreg.cluster import remove as removing
from meshreg.cluster import runtimeconfig
from meshreg.cluster import scope as scopes
from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.outcomes import Outcome
from meshreg.config import Config
from meshreg.operations.interruption import DELETE, FILES, READ, Phase
from meshreg.operations.up import push_proxy_namespaces

__all__ = ["DownEvents", "DownReport", "Purge", "down"]


@dataclass(frozen=True)
class Purge:
    """What --purge deletes beyond what `down` always deletes: the images' claim and the namespaces."""

    server: str
    claim: str  # namespace/name
    namespaces: tuple[str, ...]


@dataclass(frozen=True)
class DownReport:
    """What `down` did to each object, and what to tell the user about the runtime config's files (if anything)."""

    outcomes: tuple[Outcome, ...]
    note: str | None
    server: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """How many objects each action had, in the order the actions first came."""
        return dict(Counter(o.action for o in self.outcomes))


class DownEvents:
    """What `down` says and asks while it runs; here it asks nothing and says nothing (the CLI does)."""

    def confirm_purge(self, purge: Purge) -> None:
        """Before anything is deleted with --purge: raise to stop."""

    def outcome(self, outcome: Outcome) -> None:
        """One object deleted, absent, kept or left alone."""


def down(cfg: Config, cluster: ClusterClient, *, manifests: list[Object] | None = None, purge: bool = False,
         events: DownEvents | None = None) -> DownReport:
    """Delete meshreg's objects, workloads first (404 is fine: safe to run twice); keeps the PVC and its Namespace
    unless `purge`. `manifests`: the render of `cfg` when the caller has it already."""
    events = events or DownEvents()
    objects = rendering.render(cfg) if manifests is None else manifests
    if purge:
        events.confirm_purge(Purge(server=cluster.server, claim=f"{cfg.namespace}/registry-data",
                                   namespaces=(cfg.namespace, *push_proxy_namespaces(cfg))))
    phase = Phase("down", READ, purge=purge)
    try:
        scope, live = scopes.live_and_scope(cluster, cfg, objects)
        phase(DELETE)
        outcomes = removing.remove(manifests=objects, cluster=cluster, purge=purge, on_outcome=events.outcome,
                                   scope=scope, live=live)
        phase(FILES)
        note = runtimeconfig.after_down(cluster=cluster, cfg=cfg, outcomes=outcomes)
    except KeyboardInterrupt:
        raise phase.interrupted() from None
    return DownReport(outcomes=tuple(outcomes), note=note, server=cluster.server)
