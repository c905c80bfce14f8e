"""What a registry holds, read through its API: each repository's tags, the manifests they point at, which
manifests an index lists, when each image was built, and the size of every blob seen on the way; and, from the
registry's storage where the Job can read it, when the registry received each tag.

distribution 2.8's API says nothing of when something was pushed. Its storage does: a push of `repo:tag` (re)writes
`docker/registry/v2/repositories/<repo>/_manifests/tags/<tag>/current/link`, so that file's modification time is when
the registry last received the tag. The Job mounts a registry's volume read-only to read it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

from .registry import Client, Manifest
from .retention import Tag

CREATED = "org.opencontainers.image.created"


@dataclass
class Repository:
    """A repository's tags (with the manifest each points at) and which manifests its indexes list."""

    name: str
    tags: list[Tag] = field(default_factory=list)
    children: dict[str, list[str]] = field(default_factory=dict)  # index digest -> digests it lists


@dataclass
class Inventory:
    """Everything read from the registry: its repositories and what is known of each digest."""

    repositories: dict[str, Repository] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # digest -> bytes, for manifests and blobs
    holders: dict[str, set[str]] = field(default_factory=dict)  # digest -> repositories that reference it
    parts: dict[str, list[str]] = field(default_factory=dict)  # manifest digest -> its config and layer digests

    def note(self, repository: str, digest: str, size: int) -> None:
        """`digest` has `size` bytes and is referenced from `repository`."""
        self.sizes[digest] = size
        self.holders.setdefault(digest, set()).add(repository)


def parse_time(value: object) -> float | None:
    """An RFC 3339 time (as image configs carry it) as seconds since the epoch; None when absent, odd or 1970."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in text:  # Python before 3.11 takes at most microseconds
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits):]}"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    # Reproducible builds (kaniko --reproducible, ko, Bazel) stamp the epoch: that says nothing about age.
    return moment.timestamp() if moment.timestamp() > 0 else None


class Layout:
    """A filesystem registry's storage (its volume, mounted read-only): when each tag was received."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root) / "docker/registry/v2/repositories"

    def received(self, repository: str, tag: str) -> float | None:
        """When the registry last received `repository:tag` (the mtime of its current link); None if unreadable."""
        try:
            return os.stat(self.root / repository / "_manifests/tags" / tag / "current/link").st_mtime
        except OSError:
            return None


class Reader:
    """Reads repositories once each, caching manifests and image times by digest."""

    def __init__(self, client: Client, *, times: bool = True, layout: Layout | None = None) -> None:
        self.client = client
        self.times = times  # False: what tags and indexes point at is enough (no image config read)
        self.layout = layout  # where to read when tags were received (None: unknown, e.g. on S3)
        self.inventory = Inventory()
        self._created: dict[str, float | None] = {}

    def read(self, names: list[str] | None = None) -> Inventory:
        """Every repository (or those named), read into the inventory."""
        for name in names if names is not None else self.client.repositories():
            self.inventory.repositories[name] = self.repository(name)
        return self.inventory

    def repository(self, name: str) -> Repository:
        """One repository: each tag with its manifest and build time."""
        repo = Repository(name)
        for tag in self.client.tags(name):
            manifest = self.client.manifest(name, tag)
            if manifest is None:  # deleted since the tag list was read
                continue
            received = self.layout.received(name, tag) if self.layout and self.times else None
            repo.tags.append(Tag(tag, manifest.digest, self._time(name, manifest, repo), received))
        return repo

    def _time(self, repo_name: str, manifest: Manifest, repo: Repository) -> float | None:
        """When the image was built: the manifest's annotation, its config's `created`, or an index's newest."""
        if manifest.digest in self._created:
            return self._created[manifest.digest]
        self.inventory.note(repo_name, manifest.digest, manifest.size)
        when = parse_time((manifest.body.get("annotations") or {}).get(CREATED))
        for blob in manifest.blobs:
            self.inventory.note(repo_name, blob["digest"], int(blob.get("size", 0)))
        self.inventory.parts[manifest.digest] = [b["digest"] for b in manifest.blobs]
        if manifest.children:
            newest = self._children(repo_name, manifest, repo)  # read whether or not the index has a time
            when = when if when is not None else newest
        elif when is None:
            when = self._config_time(repo_name, manifest)
        self._created[manifest.digest] = when
        return when

    def _config_time(self, repo_name: str, manifest: Manifest) -> float | None:
        """The `created` of an image's config blob, when build times are read and the manifest has a config."""
        if not (self.times and manifest.body.get("config")):
            return None
        config = self.client.blob_json(repo_name, manifest.body["config"]["digest"]) or {}
        return parse_time(config.get("created"))

    def _children(self, repo_name: str, index: Manifest, repo: Repository) -> float | None:
        """Read the manifests an index lists (noting what they hold); the newest of their build times."""
        repo.children[index.digest] = [c["digest"] for c in index.children]
        times = []
        for child in index.children:
            found = self.client.manifest(repo_name, child["digest"])
            if found is not None:
                times.append(self._time(repo_name, found, repo))
        known = [t for t in times if t is not None]
        return max(known) if known else None
