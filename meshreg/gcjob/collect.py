"""The coordinator's side of garbage-collect, with no shell in the registry's image.

distribution's `registry garbage-collect` runs in containers of the registry's own image, one per way it can run:
`garbage-collect-plan` (`--dry-run`), `garbage-collect` (the configured flags) and, with `deleteUntagged`,
`garbage-collect-tagged` (without `--delete-untagged`). Each is started by the kubelet with the pod and blocks opening
its configuration file, a FIFO in the shared emptyDir (made by the `prepare` init container), until the coordinator
writes a configuration into it: the registry's own for the one run it wants, an empty storage's for the others, which
then exit at once having touched nothing. The coordinator follows each through its own pod's status and reads what
it printed through the API, so a container that cannot start or crashes is seen at once, not at a deadline.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .inventory import Inventory, Reader
from .registry import Client
from .retention import referenced

if TYPE_CHECKING:
    from .kube import Api
    from .run import Settings

# The containers (named alike in meshreg/render/gc.py, which gives each its flags and `<shared>/<name>.yml` to read)
PLAN, COLLECT, TAGGED = "garbage-collect-plan", "garbage-collect", "garbage-collect-tagged"
NOOP = "noop"  # an empty storage under the shared directory: what a container that should not run collects
NOOP_CONFIG = "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root}\n"

# (repository, digest) of each untagged manifest garbage-collect deletes; the repository is None for a manifest it
# would name before any repository (it never does: it names each repository before its manifests)
Untagged = list[tuple[str | None, str]]

MAX_PROBES = 2000  # HEAD requests spent finding the size of blobs no manifest lists


class GcError(Exception):
    """garbage-collect failed, or the coordinator gave up waiting for it."""


def prepare(shared: Path, containers: Iterable[str]) -> None:
    """The init container's work: a FIFO per garbage-collect container, and the empty storage."""
    for name in containers:
        if not fifo(shared, name).exists():
            os.mkfifo(fifo(shared, name), 0o600)
    for part in ("repositories", "blobs"):
        (shared / NOOP / "docker/registry/v2" / part).mkdir(parents=True, exist_ok=True)


def fifo(shared: Path, container: str) -> Path:
    """The FIFO a garbage-collect container reads its configuration from."""
    return shared / f"{container}.yml"


@dataclass
class Collectors:
    """The garbage-collect containers of this pod: which are fed, and how each ended."""

    shared: Path
    names: tuple[str, ...]
    api: Api | None  # None: nothing to follow them with (only dry runs of the lab's harness)
    pod: str
    namespace: str
    timeout: float
    fed: set[str] = field(default_factory=set)

    def run(self, name: str, config: str) -> str:
        """Have `name` run with the registry's `config`; its output once it exits 0; GcError otherwise."""
        self._feed(name, config)
        say(f"garbage-collect: {name} running")
        code, output = self._finish(name)
        if code != 0:
            raise GcError(f"{name} exited {code}: {_tail(output)}")
        return output

    def release(self, *, timeout: float = 10.0) -> None:
        """Let every container not fed yet exit at once, having touched nothing (best effort: it may be gone)."""
        for name in self.names:
            if name not in self.fed:
                with contextlib.suppress(GcError):
                    self._feed(name, NOOP_CONFIG.format(root=self.shared / NOOP), timeout=timeout)

    def _feed(self, name: str, config: str, *, timeout: float | None = None) -> None:
        """Write `config` into `name`'s FIFO once it has opened it for reading; GcError when it never does."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            try:
                fd = os.open(fifo(self.shared, name), os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as e:
                if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise GcError(f"{name}: cannot write its configuration: {e}") from e
            self._check_waiting(name, deadline)
            time.sleep(0.2)
        self.fed.add(name)
        try:
            os.set_blocking(fd, True)
            os.write(fd, config.encode())
        finally:
            os.close(fd)

    def _check_waiting(self, name: str, deadline: float) -> None:
        """GcError when `name` ended or cannot start (say why), or the deadline passed."""
        state = self._state(name)
        if "terminated" in state:
            raise GcError(f"{name} ended before it was given its configuration: {_reason(state)}")
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
                                     "CreateContainerError", "InvalidImageName", "RunContainerError"):
            raise GcError(f"{name} cannot start: {waiting.get('reason')}: {waiting.get('message', '')}"[:500])
        if time.monotonic() > deadline:
            raise GcError(f"{name} did not start within {self.timeout:.0f}s ({_reason(state) or 'no state'})")

    def _state(self, name: str) -> dict[str, Any]:
        if self.api is None:
            return {}
        pod = self.api.call("GET", f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}")
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == name:
                return dict(status.get("state") or {})
        return {}

    def _finish(self, name: str) -> tuple[int, str]:
        """Wait until `name` exits; its exit code and output."""
        deadline = time.monotonic() + self.timeout
        while True:
            state = self._state(name)
            if "terminated" in state:
                break
            if time.monotonic() > deadline:
                raise GcError(f"{name} did not finish within {self.timeout:.0f}s")
            time.sleep(0.5)
        assert self.api is not None  # a terminated state was read through it
        output = self.api.text(f"/api/v1/namespaces/{self.namespace}/pods/{self.pod}/log?container={name}")
        return int(state["terminated"].get("exitCode", 1)), output


def _reason(state: dict[str, Any]) -> str:
    for key in ("terminated", "waiting"):
        if key in state:
            found = state[key] or {}
            return f"{found.get('reason', key)}" + (f" (exit {found['exitCode']})" if "exitCode" in found else "")
    return ""


def _tail(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-3:])[:500] or "no output"


def registry_config(s: Settings) -> str:
    """The registry's own configuration (its ConfigMap, mounted in the coordinator)."""
    return Path(s.registry_config).read_text()


def collect(s: Settings, client: Client, inventory: Inventory, result: dict[str, Any],
            collectors: Collectors) -> None:
    """Run garbage-collect once, the right way: a dry run sized through the API, or, with the registry read-only,
    the real run (without --delete-untagged when that would break a multi-platform image). Records blobs and bytes
    in `result`."""
    config = registry_config(s)
    if empty(s, inventory):  # garbage-collect fails on a storage nothing was pushed to: nothing to collect there
        say("garbage-collect: nothing was ever pushed; nothing to collect")
        result["blobs"], result["untaggedManifests"] = _totals([], {}), 0
        return
    if s.dry_run:
        blobs, untagged = parse(collectors.run(PLAN, config))
        unsafe = unsafe_untagged(client, untagged) if untagged else []
        blobs = sorted(set(blobs) | freed_by_retention(inventory, result))
        result["blobs"] = _totals(blobs, sizes(client, inventory, blobs))
        result["untaggedManifests"] = 0 if unsafe else len(untagged)  # the real run would keep them all
        if unsafe:
            result["untaggedKept"] = unsafe
        return
    # Read now, read-only: no push can add a multi-platform image between this read and the run.
    unsafe = listed_untagged(Reader(client, times=False).read()) if s.delete_untagged else []
    name = TAGGED if unsafe else COLLECT
    known = _stored_sizes(s.data)  # before the run, while the blobs are there (a volume; on S3: the inventory's)
    blobs, untagged = parse(collectors.run(name, config))
    result["blobs"] = _totals(blobs, {**inventory.sizes, **known})
    result["untaggedManifests"] = len(untagged)
    if unsafe:
        result["untaggedKept"] = unsafe


def empty(s: Settings, inventory: Inventory) -> bool:
    """No repository was ever created: on a volume, no repositories directory; on S3, none in the catalog (blobs
    of uploads that never got a manifest then wait for a run after the first push)."""
    if s.data:
        return not (Path(s.data) / "docker/registry/v2/repositories").is_dir()
    return not inventory.repositories


def say(text: str) -> None:
    print(text, flush=True)


def _stored_sizes(data: str | None) -> dict[str, int | None]:
    """The size of every blob in the filesystem storage under `data` (nothing without a volume)."""
    if not data:
        return {}
    root = Path(data) / "docker/registry/v2/blobs"
    out: dict[str, int | None] = {}
    for algorithm in root.iterdir() if root.is_dir() else []:
        for path in algorithm.glob("*/*/data"):
            out[f"{algorithm.name}:{path.parent.name}"] = path.stat().st_size
    return out


def _totals(blobs: list[str], known: dict[str, int | None]) -> dict[str, int]:
    """How many blobs, their bytes where known, and how many of unknown size."""
    found = [known.get(d) for d in blobs]
    return {"count": len(blobs), "bytes": sum(n for n in found if n is not None),
            "unknownSize": sum(1 for n in found if n is None)}


def parse(text: str) -> tuple[list[str], Untagged]:
    """distribution's garbage-collect output: (blobs it deletes, (repository, manifest) pairs it deletes)."""
    blobs: list[str] = []
    manifests: Untagged = []
    repository: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("blob eligible for deletion: "):
            blobs.append(line.rsplit(" ", 1)[1])
        elif line.startswith("manifest eligible for deletion: "):
            manifests.append((repository, line.rsplit(" ", 1)[1]))
        elif line and " " not in line and ":" not in line:
            repository = line  # garbage-collect names each repository on a line of its own
    return blobs, manifests


def sizes(client: Client, inventory: Inventory, digests: Iterable[str]) -> dict[str, int | None]:
    """The size of each of `digests`: from the manifests read, else a HEAD in the repositories that may hold it."""
    out: dict[str, int | None] = {}
    probes = 0
    repositories = list(inventory.repositories)
    for digest in digests:
        size = inventory.sizes.get(digest)
        for repo in sorted(inventory.holders.get(digest, ())) + repositories:
            if size is not None or probes >= MAX_PROBES:
                break
            probes += 1
            size = client.blob_size(repo, digest)
        out[digest] = size
    return out


def listed_untagged(inventory: Inventory) -> list[str]:
    """repository@digest of each manifest a tagged index lists that no tag of its repository points at: distribution
    2.8's --delete-untagged would delete it (its issues 3004 and 3178) and break that multi-platform image."""
    out: list[str] = []
    for name, repo in sorted(inventory.repositories.items()):
        tagged = {t.digest for t in repo.tags}
        listed = referenced(tagged, repo.children) - tagged
        out += [f"{name}@{d}" for d in sorted(listed)]
    return out


def unsafe_untagged(client: Client, untagged: Untagged) -> list[str]:
    """Of the untagged manifests a dry run of --delete-untagged lists, those a tagged index lists."""
    out: list[str] = []
    for name in sorted({repo for repo, _ in untagged if repo is not None}):
        repo = Reader(client).repository(name)
        listed = referenced((t.digest for t in repo.tags), repo.children)
        out += [f"{name}@{d}" for r, d in untagged if r == name and d in listed]
    return out


def freed_by_retention(inventory: Inventory, result: dict[str, Any]) -> set[str]:
    """Blobs and manifests retention's deletions leave unreferenced (what a dry run reports as reclaimable)."""
    deleted = {d for entry in result["retention"] for d in entry["manifests"]}
    kept: set[str] = set()
    for repo in inventory.repositories.values():
        kept |= _with_parts(inventory, referenced((t.digest for t in repo.tags if t.digest not in deleted),
                                                  repo.children))
    return _with_parts(inventory, deleted) - kept


def _with_parts(inventory: Inventory, manifests: set[str]) -> set[str]:
    """`manifests` and the config and layer blobs of each."""
    return manifests | {b for m in manifests for b in inventory.parts.get(m, ())}
