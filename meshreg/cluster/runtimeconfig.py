"""The runtime config in a live cluster: the DaemonSet `up` waits for, and after `down`, waiting for its pods to remove
their files. (Its rollout and the nodes whose runtime needs it are part of `status`: meshreg.status.gather.)"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from meshreg.cluster.api import ClusterClient
from meshreg.cluster.outcomes import Outcome
from meshreg.config import Config
from meshreg.render.runtimeconfig import NAME

WORKLOAD = ("apps/v1", "DaemonSet", NAME)


def after_down(*, cluster: ClusterClient, cfg: Config, outcomes: Iterable[Outcome],
               timeout: float = 60.0) -> str | None:
    """What to tell the user once `down` has deleted the runtime config's DaemonSet (None if it did not)."""
    deleted = any((o.kind, o.namespace, o.name) == (WORKLOAD[1], cfg.namespace, NAME) and o.action == "deleted"
                  for o in outcomes)
    if not deleted:
        return None
    problem = wait_removed(cluster=cluster, cfg=cfg, timeout=timeout)
    return f"warning: {problem}" if problem else "runtime config: every pod removed its files from its node"


def wait_removed(*, cluster: ClusterClient, cfg: Config, timeout: float = 60.0, interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> str | None:
    """After `down` deleted the DaemonSet (foreground: it stays until its pods are gone, and each pod removes its
    files as it stops), wait for it to be gone. None when gone; otherwise what to tell the user."""
    start = clock()
    while cluster.get(*WORKLOAD, namespace=cfg.namespace) is not None:
        if clock() - start >= timeout:
            return (f"DaemonSet {cfg.namespace}/{NAME} still has pods after {timeout:.0f}s; each removes its files "
                    "as it stops. A node that is down keeps them: see docs/node-runtimes.md (removal)")
        sleep(interval)
    return None
