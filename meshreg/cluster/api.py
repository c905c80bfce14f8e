"""What crosses the cluster boundary: a Kubernetes object as JSON, and the client every operation talks to.

`ClusterClient` is the interface the real client (`meshreg.cluster.client.Cluster`) and the tests' fake both
implement; code above `cluster` annotates with it and never with the concrete class.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, runtime_checkable

__all__ = ["ClusterClient", "Discovery", "Object", "Snapshot", "WatchEvent", "WatchStream"]

Object = dict[str, Any]  # a Kubernetes object as the API server sends it (JSON)


@dataclass(frozen=True)
class Snapshot:
    """A list of objects and the resourceVersion it was read at: a watch from there misses no change."""

    items: list[Object]
    resource_version: str


class WatchEvent(TypedDict):
    """One event of a watch, as the API server sends it: ADDED, MODIFIED or DELETED with the object; BOOKMARK with
    an object that carries only metadata.resourceVersion; ERROR with a Status (code 410 Gone: the resourceVersion
    is too old, list again)."""

    type: str
    object: Object


class WatchStream(Protocol):
    """The events of one watch, until the server ends it (its timeoutSeconds) or `close` is called (from any
    thread)."""

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def close(self) -> None: ...


class Discovery(Protocol):
    """What answers which resources a group version serves: the client, or a cache in front of it."""

    def served(self, api_version: str) -> set[str]:
        """Resource names a group version serves (empty when the group is not installed)."""


@runtime_checkable
class ClusterClient(Protocol):
    """One API server. Every method raises meshreg.errors.ClusterError (one line), never a client exception."""

    server: str
    warnings: list[str]  # the server's Warning headers, each prefixed with the object it is about

    def version(self) -> Object:
        """GET /version."""

    def server_time(self) -> float | None:
        """The server's clock (POSIX seconds, from its Date header) at the latest answer received; None before any
        answer, or from a server that does not say."""

    def served(self, api_version: str) -> set[str]:
        """Resource names a group version serves (empty when the group is not installed)."""

    def get(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> Object | None:
        """The live object, or None when it does not exist."""

    def list(self, api_version: str, kind: str, *, namespace: str | None = None,
             label_selector: str | None = None, field_selector: str | None = None) -> list[Object]:
        """Objects of a kind (in a namespace, or everywhere), with apiVersion and kind set on each."""

    def snapshot(self, api_version: str, kind: str, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None) -> Snapshot:
        """Like `list`, with the list's resourceVersion, from which `watch` goes on."""

    def watch(self, api_version: str, kind: str, *, namespace: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, resource_version: str, timeout_seconds: int) -> WatchStream:
        """The changes after `resource_version` (with bookmarks), until the server ends the watch after
        `timeout_seconds`. ClusterError when the server refuses it (RBAC without watch: 403); a resourceVersion too
        old for the server is an ERROR event with code 410 (or, from some servers, ClusterError with code 410)."""

    def apply(self, obj: Object, *, dry_run: bool = False, force: bool = False,
              field_manager: str = ...) -> Object:
        """Server-side apply; the object as the server has it (or would, with dry_run)."""

    def create(self, obj: Object, *, field_manager: str = ...) -> Object:
        """POST a new object (or a review); what the server answered."""

    def delete(self, api_version: str, kind: str, name: str, *, namespace: str | None = None,
               propagation: str = "Background", dry_run: bool = False) -> bool:
        """Delete; False when it was already gone."""

    def log(self, pod: str, *, namespace: str, container: str | None = None, previous: bool = False,
            tail: int | None = None, limit_bytes: int | None = None, since_seconds: int | None = None,
            timestamps: bool = False) -> str | None:
        """A container's log (each line after the kubelet's time with `timestamps`); None when the pod is gone."""

    def node_summary(self, node: str) -> Object:
        """The kubelet's stats summary through the API server; ClusterError, with the API's reason, when it cannot
        be read."""
