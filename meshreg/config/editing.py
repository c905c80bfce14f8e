"""Grants and revokes writers in a config file, changing only the bytes of the writer entry being edited.

Edits are spliced into the text at the offsets of its YAML nodes (meshreg.config.spans), so comments, quotes, flow
and block styles, indentation, CRLF line endings and a missing final newline stay as they were, and a grant then the
matching revoke gives back the same bytes. (ruamel.yaml's round trip re-emits the whole document: it wrote LF into a
CRLF file and re-spaced untouched flow entries.) A grant of what is already granted, or a revoke of what is absent,
changes nothing and says so, like `kubectl apply`'s "unchanged". Every edit is validated with meshreg.config before
anything is written, and the file is replaced atomically, so a refused or invalid edit leaves it byte-identical.

Revoking the last writer leaves `writers: []` (as `meshreg init` writes it): a list that was absent or null before
the grant comes back as `[]`, the one case where grant then revoke does not give back the very same bytes.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace

from meshreg import config
from meshreg.config import Config, Registry, Writer, names
from meshreg.config.spans import Quoted, Value
from meshreg.config.writerlist import Prefixes, WritersList
from meshreg.errors import ConfigError, UsageError


@dataclass(frozen=True)
class Edit:
    """The new text of the file and the writer as it was before and is after (None: not a writer); `changed` is
    False when the grant or revoke was already true, and `note` then says why."""

    text: str
    before: Writer | None
    after: Writer | None
    note: str = ""
    changed: bool = True


def grant(text: str, *, name: str, identity: str, repositories: tuple[str, ...] = (), delete: bool = False,
          registry: str | None = None) -> Edit:
    """Make `identity` a writer, or widen it: new prefixes, `*` for every repository, or the DELETE grant."""
    prefixes, cfg, reg, old = _current(text, name=name, identity=identity, repositories=repositories,
                                       registry=registry)
    if identity == cfg.node_proxy_identity:
        raise UsageError(f"{identity} is the node proxy, which serves unauthenticated reads: it can never be a writer")
    if old is None:
        entry: dict[str, Value] = {"serviceAccount": identity,
                                   "repositories": [Quoted(p) for p in prefixes or ("*",)]}
        if delete:
            entry["delete"] = True
        return _finish(WritersList(text, name, reg.name).add(entry), name=name, cfg=cfg, reg=reg, before=None,
                       identity=identity)
    new, add_delete, unchanged = _widening(old, prefixes, delete=delete)
    if unchanged:
        return Edit(text=text, before=old, after=old, note=unchanged, changed=False)
    edit = WritersList(text, name, reg.name)
    if new:
        edit.add_prefixes(identity, new)
    if add_delete:
        edit.grant_delete(identity)
    return _finish(edit.text, name=name, cfg=cfg, reg=reg, before=old, identity=identity)


def revoke(text: str, *, name: str, identity: str, repositories: tuple[str, ...] = (), delete: bool = False,
           registry: str | None = None) -> Edit:
    """Remove a writer, some of its prefixes (the last one removes the writer: revoking never widens), or DELETE."""
    prefixes, cfg, reg, old = _current(text, name=name, identity=identity, repositories=repositories,
                                       registry=registry)
    if old is None:
        where = f" of registry {reg.name}" if len(cfg.registries) > 1 else ""
        return Edit(text=text, before=None, after=None, changed=False,
                    note=f"{identity} is not a writer{where}: nothing to revoke")
    gone, unchanged = _narrowing(old, prefixes, delete=delete) if prefixes or delete else (old.repositories, "")
    if unchanged:
        return Edit(text=text, before=old, after=old, note=unchanged, changed=False)
    edit = WritersList(text, name, reg.name)
    removed = edit.take(old, gone, delete=delete)
    note = f"{identity} had no repository prefix left, so it is no longer a writer" if prefixes and removed else ""
    return _finish(edit.text, name=name, cfg=cfg, reg=reg, before=old, identity=identity, note=note)


def write_atomically(path: str, text: str) -> None:
    """Replace `path` with `text` via a temp file in the same directory, keeping the file's mode."""
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _prefixes(identity: str, repositories: tuple[str, ...]) -> Prefixes:
    problem = names.check_identity(identity)
    if problem:
        raise UsageError(problem)
    for repo in repositories:
        problem = names.check_repository_prefix(repo)
        if problem:
            raise UsageError(f"--repo: {problem}")
    return tuple(dict.fromkeys(names.normalize_prefix(r) for r in repositories))


def _current(text: str, *, name: str, identity: str, repositories: tuple[str, ...],
             registry: str | None) -> tuple[Prefixes, Config, Registry, Writer | None]:
    """The checked prefixes, the config, the registry edited and the writer as it is now (or None)."""
    prefixes = _prefixes(identity, repositories)
    cfg = config.from_text(text, name=name)
    reg = _writable(cfg, registry)
    return prefixes, cfg, reg, _writer(cfg, identity, reg.name)


def _writable(cfg: Config, registry: str | None) -> Registry:
    """The registry whose writers list is edited; only an images registry has one."""
    reg = cfg.get_registry(registry)
    if reg.role != "images":
        who = f"its publisher is {reg.publisher}" if reg.publisher else "nobody can write it"
        extra = "; set spec.registries[].publisher to change that" if reg.role == "readonly" else ""
        raise UsageError(f"registry {reg.name} is {reg.role}: it has no writers ({who}{extra})")
    return reg


def _writer(cfg: Config, identity: str, registry: str | None = None) -> Writer | None:
    writers = cfg.get_registry(registry).writers
    return next((w for w in writers if w.service_account == identity), None)


def _covered(prefix: str, scope: Prefixes) -> str | None:
    return next((s for s in scope if s == "*" or prefix.startswith(s)), None)


def _widening(old: Writer, prefixes: Prefixes, *, delete: bool) -> tuple[Prefixes, bool, str]:
    """What a grant adds to an existing writer: prefixes not covered yet and whether DELETE; or, when it adds
    nothing, why (the grant is already true)."""
    _refuse_widening(old, prefixes, delete=delete)
    new = tuple(p for p in prefixes if _covered(p, old.repositories) is None)
    add_delete = delete and not old.delete
    if new or add_delete:
        return new, add_delete, ""
    covered = ", ".join(f"{p} (by {_covered(p, old.repositories)})" for p in prefixes)
    why = f"already writes {covered}" if old.scoped else "is already a writer of every repository (\"*\")"
    return (), False, f"{old.service_account} {why}" + (" with the DELETE grant" if delete else "")


def _refuse_widening(old: Writer, prefixes: Prefixes, *, delete: bool) -> None:
    """A grant without --repo (which, for a new writer, means every repository) to a scoped writer is ambiguous."""
    if not prefixes and not delete and old.scoped:
        raise UsageError(f"{old.service_account} is already a writer (repositories: {', '.join(old.repositories)}); "
                         "add prefixes with --repo, or --repo '*' for every repository")


def _narrowing(old: Writer, prefixes: Prefixes, *, delete: bool) -> tuple[Prefixes, str]:
    """The prefixes a revoke takes from a writer (all of them: the writer goes), or, when it takes nothing, why."""
    _refuse_narrowing(old, prefixes)
    gone = tuple(p for p in prefixes if p in old.repositories)
    if gone or (delete and old.delete):
        return gone, ""
    absent = [f"is not granted {', '.join(prefixes)}"] if prefixes else []
    absent += ["has no DELETE grant"] if delete else []
    return (), f"{old.service_account} {' and '.join(absent)}: nothing to revoke"


def _refuse_narrowing(old: Writer, prefixes: Prefixes) -> None:
    """Prefixes cannot be taken from a writer of every repository, nor from under a prefix it is granted."""
    if prefixes and not old.scoped:
        raise UsageError(f"{old.service_account} writes every repository (\"*\"); to narrow it, revoke it and "
                         "grant it again with --repo")
    under = [p for p in prefixes if p not in old.repositories and _covered(p, old.repositories)]
    if under:
        raise UsageError(f"{old.service_account} is not granted {', '.join(under)} itself but "
                         f"{_covered(under[0], old.repositories)}, which covers it; revoke that prefix instead "
                         f"(its prefixes: {', '.join(old.repositories)})")


def _finish(text: str, *, name: str, cfg: Config, reg: Registry, before: Writer | None, identity: str,
            note: str = "") -> Edit:
    """The edit, once the whole new file validates and differs from the old one in this writer only."""
    new = config.from_text(text, name=name)
    after = _writer(new, identity, reg.name)
    if _without(new, reg.name, identity) != _without(cfg, reg.name, identity):
        raise ConfigError(f"{name}: this edit would change more than the writer {identity}; edit it by hand")
    return Edit(text=text, before=before, after=after, note=note)


def _without(cfg: Config, registry: str, identity: str) -> Config:
    """The config with `identity` taken out of `registry`'s writers: what an edit of that writer must not change."""
    return replace(cfg, registries=tuple(
        replace(r, writers=tuple(w for w in r.writers if w.service_account != identity)) if r.name == registry else r
        for r in cfg.registries))
