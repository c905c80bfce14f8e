"""Objects kept current by watching them, for the waits (rollouts, verify's Jobs and pull, gc's Job): a wait reacts
to a change as it happens instead of asking every two seconds.

Each Source is listed once, then watched from the list's resourceVersion in a thread of its own, as client-go's
reflector does: bookmarks move the resourceVersion on, a watch the server ends (its timeoutSeconds) is started again
from there, and 410 Gone (the resourceVersion is too old for the server) lists again. Where watching is not allowed
(RBAC with get but no list or watch, 403; 405), the wait asks again every `interval` seconds instead, as before,
with GET for a named object.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from meshreg.cluster.api import ClusterClient, Object, Snapshot, WatchEvent, WatchStream
from meshreg.cluster.errors import ApiError, NotFound, PermissionDenied
from meshreg.errors import ClusterError

WATCH_SECONDS = 290  # each watch request: under the 5 minutes many load balancers allow an idle connection
RETRY_PAUSE = 1.0  # seconds before a broken watch, or one that ended at once, is started again
SHORT_WATCH = 1.0  # seconds: a watch that ends sooner with no event is "short" (client-go's "very short watch")
SHORT_WATCHES = 3  # short watches in a row, and the source is polled instead
GONE = 410
EVENTS = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK")


@dataclass(frozen=True)
class Source:
    """What to keep current: one named object (`name`), or the objects a field selector picks."""

    api_version: str
    kind: str
    namespace: str | None
    name: str | None = None
    field_selector: str | None = None

    @property
    def selector(self) -> str | None:
        return f"metadata.name={self.name}" if self.name else self.field_selector


class Watcher:
    """The objects of several sources, kept current by watches; a context manager that stops them on exit."""

    def __init__(self, cluster: ClusterClient, sources: list[Source], *, watch: bool = True) -> None:
        """`watch` False: every source is read on each look, as a wait whose time a test controls needs."""
        self.cluster = cluster
        self._watch = watch
        self._objects: dict[Source, dict[str, Object]] = {}
        self._polled: set[Source] = set()  # sources that cannot be watched: read on every refresh
        self._errors: list[ClusterError] = []
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._streams: set[WatchStream] = set()
        self._threads: list[threading.Thread] = []
        self.sources = list(dict.fromkeys(sources))

    def __enter__(self) -> Watcher:
        for source in self.sources:
            version = self._list(source) if self._watch else None
            if version is None:
                self._polled.add(source)
                continue
            thread = threading.Thread(target=self._follow, args=(source, version), daemon=True,
                                      name=f"meshreg-watch-{source.kind}")
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()
        for thread in self._threads:
            thread.join(timeout=2)

    @property
    def watching(self) -> bool:
        """Whether every source is watched (none falls back to asking again)."""
        return not self._polled

    def get(self, source: Source) -> Object | None:
        """The named object of `source` as last seen (None: it does not exist)."""
        found = self.items(source)
        return found[0] if found else None

    def items(self, source: Source) -> list[Object]:
        """The objects of `source` as last seen; a source that cannot be watched is read now."""
        with self._lock:
            polled = source in self._polled
        if polled:
            return self._read(source)
        with self._lock:
            if self._errors:
                raise self._errors[0]
            return [copy.deepcopy(o) for _, o in sorted(self._objects.get(source, {}).items())]

    def wait(self, seconds: float) -> None:
        """Until something changed, at most `seconds`."""
        self._changed.wait(seconds)
        self._changed.clear()

    # --- in the watch threads
    def _list(self, source: Source) -> str | None:
        """List `source` into the cache; its resourceVersion, or None when it cannot be listed or watched."""
        try:
            listed = self.cluster.snapshot(source.api_version, source.kind, namespace=source.namespace,
                                           field_selector=source.selector)
        except ClusterError as e:
            if _not_allowed(e):
                return None
            raise
        self._store(source, listed)
        return listed.resource_version

    def _follow(self, source: Source, version: str) -> None:
        """Watch `source` from `version` until stopped; when it cannot, it is polled instead."""
        try:
            watched = self._keep_watching(source, version)
        except ClusterError as e:
            if not _not_allowed(e):
                with self._lock:
                    self._errors.append(e)
                self._changed.set()
                return
            watched = False
        if not watched:
            with self._lock:
                self._polled.add(source)
            self._changed.set()

    def _keep_watching(self, source: Source, version: str | None) -> bool:
        """Watch again and again until stopped; False when `source` can no longer be listed or watched, or the
        server keeps ending watches at once."""
        short = 0  # watches in a row that ended at once with nothing in them
        while version is not None and not self._stop.is_set():
            started = time.monotonic()
            version, seen = self._watch_once(source, version)
            short = short + 1 if not seen and time.monotonic() - started < SHORT_WATCH else 0
            if short >= SHORT_WATCHES:
                return False
            if short > 1:  # as client-go's reflector: watches that keep ending at once are not restarted at once
                self._stop.wait(RETRY_PAUSE)
        return version is not None

    def _watch_once(self, source: Source, version: str) -> tuple[str | None, int]:
        """One watch request, its events applied: the resourceVersion to go on from (None: poll instead) and how many
        events it brought."""
        try:
            stream = self.cluster.watch(source.api_version, source.kind, namespace=source.namespace,
                                        field_selector=source.selector, resource_version=version,
                                        timeout_seconds=WATCH_SECONDS)
        except ApiError as e:
            if e.code == GONE:  # some servers refuse an old resourceVersion outright
                return self._list(source), 0
            raise
        with self._lock:
            if self._stop.is_set():
                stream.close()
                return version, 0
            self._streams.add(stream)
        seen = 0
        try:
            for event in stream:
                if event["type"] not in EVENTS:  # ERROR (410 Gone: too old), or not a watch event at all
                    return self._list(source), seen
                version, seen = self._apply(source, event, version), seen + 1
        except ClusterError:  # the connection broke: watch again from where it was
            self._stop.wait(RETRY_PAUSE)
        finally:
            with self._lock:
                self._streams.discard(stream)
        return version, seen

    def _apply(self, source: Source, event: WatchEvent, version: str) -> str:
        """Apply one event; the resourceVersion after it."""
        kind, obj = event["type"], event["object"]
        meta = obj.get("metadata") or {}
        if kind != "BOOKMARK":
            obj.setdefault("apiVersion", source.api_version)
            obj.setdefault("kind", source.kind)
            with self._lock:
                objects = self._objects.setdefault(source, {})
                if kind == "DELETED":
                    objects.pop(meta.get("name", ""), None)
                else:
                    objects[meta.get("name", "")] = obj
            self._changed.set()
        return str(meta.get("resourceVersion") or version)  # a BOOKMARK carries only this

    def _store(self, source: Source, listed: Snapshot) -> None:
        with self._lock:
            self._objects[source] = {o["metadata"]["name"]: o for o in listed.items}
        self._changed.set()

    def _read(self, source: Source) -> list[Object]:
        """A source that cannot be watched, read now: GET of the named object, else a list."""
        if source.name:
            obj = self.cluster.get(source.api_version, source.kind, source.name, namespace=source.namespace)
            return [obj] if obj is not None else []
        return self.cluster.list(source.api_version, source.kind, namespace=source.namespace,
                                 field_selector=source.field_selector)


def _not_allowed(e: ClusterError) -> bool:
    """A refusal that polling gets around: no list or watch permission (RBAC may still allow get), or a
    resource that cannot be watched."""
    return isinstance(e, (PermissionDenied, NotFound)) or (isinstance(e, ApiError) and e.code == 405)


def watch(cluster: ClusterClient, sources: list[Source], *, sleep: Callable[[float], None] | None) -> Watcher:
    """The watcher of a wait: watching, unless a test passes its own `sleep` (and so its own time), when each look
    reads the sources as the wait always did, so what the test changes during a sleep is seen at the next look."""
    return Watcher(cluster, sources, watch=sleep is None)


def pause(watcher: Watcher, sleep: Callable[[float], None] | None) -> Callable[[float], None]:
    """What a wait pauses with between looks: the `sleep` a test passes, else until something changes."""
    return sleep if sleep is not None else watcher.wait
