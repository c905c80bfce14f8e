"""Independent API requests sent at once: results come back in the order asked, so output stays deterministic.

The official client's urllib3 pool is thread-safe, and a request spends its time waiting on the network, so threads
are enough; the connection pool is sized to WORKERS in `client.connect` so no connection is opened and thrown away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

from meshreg.errors import ClusterError

WORKERS = 16  # requests in flight at once: about one render's worth of objects

T = TypeVar("T")
R = TypeVar("R")


def each(fn: Callable[[T], R], items: Iterable[T]) -> list[tuple[T, R | None, ClusterError | None]]:
    """(item, fn(item), None) or (item, None, the ClusterError it raised) for every item, in the items' order.
    Anything else raised (a bug) propagates."""
    items = list(items)
    if len(items) <= 1:
        return [_one(fn, item) for item in items]
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(items)), thread_name_prefix="meshreg") as pool:
        futures = [pool.submit(_one, fn, item) for item in items]
        return [f.result() for f in futures]


def _one(fn: Callable[[T], R], item: T) -> tuple[T, R | None, ClusterError | None]:
    try:
        return item, fn(item), None
    except ClusterError as e:
        return item, None, e


def values(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """fn(item) for every item, concurrently, in order; the first ClusterError (in the items' order) is raised."""
    out: list[R] = []
    for _, value, error in each(fn, items):
        if error is not None:
            raise error
        out.append(cast(R, value))  # no error: what fn returned
    return out
