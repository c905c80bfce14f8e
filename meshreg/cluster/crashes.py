"""Why a registry container keeps dying, read from its last log lines, for `status` and `up`'s diagnosis."""

from __future__ import annotations

import re
from typing import Any

# distribution 2.8 in proxy mode: handlers.NewApp pings the upstream and panics on any transport error.
_UPSTREAM_PANIC = re.compile(r'^panic: Get "(?P<url>[^"]+)": (?P<error>.+)$', re.MULTILINE)


def crashing(pod: dict[str, Any]) -> list[tuple[str, bool]]:
    """(container, previous) for every container of `pod` that died with an error: read its previous run's log
    when it has been restarted, else the current (terminated) one."""
    out = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state, last = cs.get("state") or {}, cs.get("lastState") or {}
        if (last.get("terminated") or {}).get("exitCode"):
            out.append((cs["name"], True))
        elif (state.get("terminated") or {}).get("exitCode"):
            out.append((cs["name"], False))
    return out


def explain(log: str) -> str | None:
    """A sentence a user can act on, when the log shows a failure meshreg knows; None otherwise."""
    found = _UPSTREAM_PANIC.search(log or "")
    if not found:  # only a mirror (distribution's proxy mode) pings an upstream while starting
        return None
    url, error = found["url"].removesuffix("/v2/"), found["error"].strip()
    return (f"the mirror panicked while starting because it could not reach {url} ({error}); distribution 2.8 does "
            "this on any transport error (distribution#4038), while any HTTP answer, even a 503 from its sidecar, "
            f"lets it start and serve its cache. {_cause(url, error)}")


def _cause(url: str, error: str) -> str:
    if "connection refused" in error:
        return ("Its sidecar was not running when it started: check that the pod has an istio-proxy container "
                "(holdApplicationUntilProxyStarts needs Istio 1.8 or later), then delete the pod.")
    if "no such host" in error:
        return (f"{url} does not resolve: the mirror reaches its upstream through meshreg's Service of that name; "
                "run meshreg up to restore it.")
    return ("The way to the upstream ended without an HTTP answer: check the mirror's -upstream ServiceEntry, "
            "DestinationRule and VirtualService (meshreg up renders them) and the istio-proxy container's log.")
