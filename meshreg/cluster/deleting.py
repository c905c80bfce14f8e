"""Objects of a render that are being deleted (a deletionTimestamp: `meshreg down` deletes workloads in the
foreground, so a Deployment stays until its pods are gone): applying to one changes nothing, and then it is gone.
`up` waits until they are gone before it applies."""

from __future__ import annotations

import time
from collections.abc import Callable

from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.live import Live, key_of
from meshreg.cluster.outcomes import named
from meshreg.cluster.wait import Progress
from meshreg.errors import ClusterError


def being_deleted(objects: list[Object], live: Live) -> list[Object]:
    """The rendered objects whose live version is being deleted (Namespaces aside: apply refuses those itself)."""
    return [o for o in objects if o["kind"] != "Namespace"
            and ((live.of(o) or {}).get("metadata") or {}).get("deletionTimestamp")]


def await_gone(cluster: ClusterClient, pending: list[Object], *, timeout: float, progress: Progress,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll until none of `pending` exists any more; ClusterError naming what is left after `timeout` seconds."""
    start = clock()
    while pending:
        progress.update(f"waiting for {len(pending)} object(s) being deleted to be gone: "
                        f"{', '.join(named(o) for o in pending[:3])}{' ...' if len(pending) > 3 else ''} "
                        f"({clock() - start:.0f}s)")
        if clock() - start >= timeout:
            progress.done()
            raise ClusterError(f"still being deleted after {timeout:.0f}s: {', '.join(named(o) for o in pending)} "
                               "(kubectl get them to see their finalizers); nothing was changed")
        sleep(1.0)
        pending = [o for o in pending if _exists(cluster, o)]
    progress.done()


def _exists(cluster: ClusterClient, obj: Object) -> bool:
    api_version, kind, namespace, name = key_of(obj)
    return cluster.get(api_version, kind, name, namespace=namespace) is not None
