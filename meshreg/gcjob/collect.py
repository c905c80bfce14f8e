"""The coordinator's side of garbage-collect: hand over to the garbage-collect container, read its plan, size
what it would remove, decide whether untagged manifests may go, and read what it removed."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .inventory import Inventory, Reader
from .registry import Client
from .retention import referenced

if TYPE_CHECKING:
    from .run import Settings

# (repository, digest) of each untagged manifest garbage-collect deletes; the repository is None for a manifest it
# would name before any repository (it never does: it names each repository before its manifests)
Untagged = list[tuple[str | None, str]]

MAX_PROBES = 2000  # HEAD requests spent finding the size of blobs no manifest lists


class GcError(Exception):
    """garbage-collect failed, or the coordinator gave up waiting for it."""


def collect(s: Settings, client: Client, inventory: Inventory, result: dict[str, Any]) -> None:
    """Plan with a dry run, decide, run (unless dry run), and record blobs and bytes in `result`."""
    untagged_flag = "--delete-untagged" if s.delete_untagged else ""
    blobs, untagged, unsafe = _plan(s, client, inventory, result, untagged_flag=untagged_flag)
    known = sizes(client, inventory, blobs)  # now, while the blobs are still there
    _write(s.shared, "run", "skip" if s.dry_run else ("" if unsafe else untagged_flag))
    if _wait(s.shared, "done", timeout=s.timeout) != "0":
        raise GcError("garbage-collect failed: " + _tail(s.shared / "gc.out"))
    if not s.dry_run:
        blobs, untagged = parse((s.shared / "gc.out").read_text())
    result["blobs"] = _totals(blobs, known)
    result["untaggedManifests"] = 0 if unsafe else len(untagged)


def _plan(s: Settings, client: Client, inventory: Inventory, result: dict[str, Any], *,
          untagged_flag: str) -> tuple[list[str], Untagged, list[str]]:
    """garbage-collect's dry run, once no registry pod accepts writes: the blobs it would delete (with those
    retention's deletions free, on a dry run), the untagged manifests, and those of them unsafe to delete."""
    _write(s.shared, "go", untagged_flag)
    if _wait(s.shared, "plan", timeout=s.timeout) != "0":
        raise GcError("garbage-collect --dry-run failed: " + _tail(s.shared / "plan.err"))
    blobs, untagged = parse((s.shared / "plan.out").read_text())
    unsafe = unsafe_untagged(client, untagged) if untagged else []
    if unsafe:
        result["untaggedKept"] = unsafe
    if s.dry_run:
        blobs = sorted(set(blobs) | freed_by_retention(inventory, result))
    return blobs, untagged, unsafe


def _totals(blobs: list[str], known: dict[str, int | None]) -> dict[str, int]:
    """How many blobs, their bytes where known, and how many of unknown size."""
    found = [known.get(d) for d in blobs]
    return {"count": len(blobs), "bytes": sum(n for n in found if n is not None),
            "unknownSize": sum(1 for n in found if n is None)}


def _tail(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return " / ".join(lines[-3:])[:500] or "no output"


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


def _wait(shared: Path, name: str, *, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while not (shared / name).exists():
        if time.monotonic() > deadline:
            raise GcError(f"the garbage-collect container did not write {name} within {timeout:.0f}s")
        time.sleep(0.5)
    return (shared / name).read_text().strip()


def _write(shared: Path, name: str, text: str) -> None:
    (shared / f"{name}.tmp").write_text(text)
    (shared / f"{name}.tmp").rename(shared / name)


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


def unsafe_untagged(client: Client, untagged: Untagged) -> list[str]:
    """Untagged manifests distribution 2.8's --delete-untagged would delete although a tagged index lists them
    (distribution issues 3004 and 3178): it would break every multi-platform image."""
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
