"""Where `meshreg.yaml` is found when no file is named: this directory, then each directory above it up to the root of
the Git work tree it is in (like git finding `.git`); outside a Git work tree, only this directory.

Stopping at the work tree's root means a `meshreg.yaml` of an unrelated project higher up (or in the home directory)
is never picked up by accident; walking up inside it means a command run from `deploy/` or `docs/` of a repository
uses the repository's config, as `git` and `kubectl kustomize` users expect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from meshreg.config.model import DEFAULT_FILE

__all__ = ["Search", "find"]

GIT = ".git"  # a directory, or a file in linked work trees and submodules


@dataclass(frozen=True)
class Search:
    """What a search found: the config as a path relative to where the search started (`meshreg.yaml`,
    `../../meshreg.yaml`: every message then names it so), or None; and whether the start is inside a Git work
    tree (so the search went up to its root)."""

    path: str | None
    in_work_tree: bool


def find(start: str | None = None) -> Search:
    """Look for DEFAULT_FILE from `start` (default: the working directory) up to the root of its Git work tree."""
    here = os.path.abspath(start or os.getcwd())
    candidates = _upwards(here)
    in_work_tree = _work_tree_root(candidates) is not None
    for directory in candidates if in_work_tree else candidates[:1]:
        path = os.path.join(directory, DEFAULT_FILE)
        if os.path.isfile(path):
            return Search(path=os.path.relpath(path, here), in_work_tree=in_work_tree)
        if os.path.exists(os.path.join(directory, GIT)):
            break
    return Search(path=None, in_work_tree=in_work_tree)


def _upwards(directory: str) -> list[str]:
    """`directory` and every directory above it, nearest first."""
    out = [directory]
    while (parent := os.path.dirname(out[-1])) != out[-1]:
        out.append(parent)
    return out


def _work_tree_root(directories: list[str]) -> str | None:
    return next((d for d in directories if os.path.exists(os.path.join(d, GIT))), None)

