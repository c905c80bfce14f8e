"""Edits the writers list of a config file in place, keeping the user's comments, order, quotes and layout.

ruamel.yaml's round-trip mode re-emits every untouched node as it was read; only the writer entry being
granted or revoked changes. Every edit is validated with meshreg.config before anything is written, and the
file is replaced atomically, so a refused or invalid edit leaves it byte-identical.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.representer import BaseRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from meshreg import config
from meshreg.config import Config, Registry, Writer, names
from meshreg.errors import ConfigError, UsageError

Prefixes = tuple[str, ...]  # repository prefixes, normalized ("team-a/") or "*"


@dataclass(frozen=True)
class Edit:
    """The new text of the file and the writer as it was before and is after (None: not a writer)."""

    text: str
    before: Writer | None
    after: Writer | None
    note: str = ""


def grant(text: str, *, name: str, identity: str, repositories: tuple[str, ...] = (), delete: bool = False,
          registry: str | None = None) -> Edit:
    """Make `identity` a writer, or widen it: new prefixes, `*` for every repository, or the DELETE grant."""
    prefixes, cfg, reg, old = _current(text, name=name, identity=identity, repositories=repositories,
                                       registry=registry)
    if identity == cfg.node_proxy_identity:
        raise UsageError(f"{identity} is the node proxy, which serves unauthenticated reads: it can never be a writer")
    if old is not None:
        prefixes = _widening(old, prefixes, delete=delete)
    doc, yaml = _load(text, name)
    writers = _writers_seq(doc, reg.name)
    if old is None:
        writers.fa.set_block_style()
        writers.append(_new_entry(identity, prefixes or ("*",), delete=delete, like=writers))
    else:
        entry = _entry(writers, identity)
        if prefixes:
            _set_repositories(entry, prefixes, keep=() if "*" in prefixes else old.repositories)
        if delete:
            entry["delete"] = True
    return _finish(yaml, doc, name=name, identity=identity, before=old, old_text=text, registry=reg.name)


def revoke(text: str, *, name: str, identity: str, repositories: tuple[str, ...] = (), delete: bool = False,
           registry: str | None = None) -> Edit:
    """Remove a writer, some of its prefixes (the last one removes the writer: revoking never widens), or DELETE."""
    prefixes, cfg, reg, old = _current(text, name=name, identity=identity, repositories=repositories,
                                       registry=registry)
    if old is None:
        where = f" of registry {reg.name}" if len(cfg.registries) > 1 else ""
        raise UsageError(f"{identity} is not a writer{where} in {name} (see `meshreg policy list`)")
    doc, yaml = _load(text, name)
    writers = _writers_seq(doc, reg.name)
    entry = _entry(writers, identity)
    only_delete = delete and not prefixes
    keep = _narrowing(old, prefixes) if prefixes else ()
    # The entry goes (and its comments with it) unless it keeps prefixes or loses only its DELETE grant.
    own_text = text if only_delete or keep else _without_entry(text, writers, writers.index(entry))
    note = _revoke_entry(writers, entry, old, prefixes=prefixes, keep=keep, only_delete=only_delete)
    if not writers:
        writers.fa.set_flow_style()  # `writers: []`, as `meshreg init` writes it
        _keep_end_comments(doc, writers)
    return _finish(yaml, doc, name=name, identity=identity, before=old, note=note, old_text=own_text,
                   registry=reg.name)


def _revoke_entry(writers: CommentedSeq, entry: CommentedMap, old: Writer, *, prefixes: Prefixes, keep: Prefixes,
                  only_delete: bool) -> str:
    """Take the DELETE grant or `prefixes` from the writer's entry (`keep`: what is left), or remove it; a note
    when revoking prefixes removed the writer."""
    if only_delete:
        if not old.delete:
            raise UsageError(f"{old.service_account} has no DELETE grant to revoke")
        del entry["delete"]
        return ""
    if keep:
        _set_repositories(entry, (), keep=keep)
        return ""
    writers.remove(entry)
    if prefixes:
        return f"{old.service_account} had no repository prefix left, so it is no longer a writer"
    return ""


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


def _widening(old: Writer, prefixes: Prefixes, *, delete: bool) -> Prefixes:
    """The prefixes to add to an existing writer; refuse a grant that would change nothing."""
    _refuse_regrant(old, prefixes, delete=delete)
    new = tuple(p for p in prefixes if _covered(p, old.repositories) is None)
    _refuse_covered(old, prefixes, new, delete=delete)
    return new


def _refuse_regrant(old: Writer, prefixes: Prefixes, *, delete: bool) -> None:
    """A grant of what the writer's scope already is: every repository, or nothing named at all."""
    if not old.scoped and (prefixes or not delete):
        raise UsageError(f"{old.service_account} is already a writer of every repository (\"*\"): nothing to add")
    if not prefixes and not delete:
        raise UsageError(f"{old.service_account} is already a writer (repositories: {', '.join(old.repositories)}); "
                         "add prefixes with --repo, or --repo '*' for every repository")


def _refuse_covered(old: Writer, prefixes: Prefixes, new: Prefixes, *, delete: bool) -> None:
    """A grant whose prefixes (`new`: those not covered yet) and DELETE the writer already has."""
    if prefixes and not new and not (delete and not old.delete):
        covered = ", ".join(f"{p} (by {_covered(p, old.repositories)})" for p in prefixes)
        raise UsageError(f"{old.service_account} already writes {covered}: nothing to add")
    if delete and old.delete and not new:
        raise UsageError(f"{old.service_account} already has the DELETE grant: nothing to add")


def _narrowing(old: Writer, prefixes: Prefixes) -> Prefixes:
    if not old.scoped:
        raise UsageError(f"{old.service_account} writes every repository (\"*\"); to narrow it, revoke it and "
                         "grant it again with --repo")
    missing = [p for p in prefixes if p not in old.repositories]
    if missing:
        raise UsageError(f"{old.service_account} is not granted {', '.join(missing)} "
                         f"(its prefixes: {', '.join(old.repositories)})")
    return tuple(p for p in old.repositories if p not in prefixes)


def _load(text: str, name: str) -> tuple[CommentedMap, YAML]:
    try:
        _, sequence, dash = load_yaml_guess_indent(text)
        mapping = _mapping_indent(text)
        yaml = YAML()
        yaml.preserve_quotes = True
        yaml.width = 1 << 16  # never re-wrap the user's long lines
        if dash is None:  # no block sequence yet: dash two columns in, as `meshreg init` comments show
            sequence, dash = mapping + 2, 2
        yaml.indent(mapping=mapping, sequence=sequence, offset=dash)
        yaml.representer.add_representer(type(None), _null)
        return yaml.load(text), yaml
    except YAMLError as e:  # from_text has already accepted the text, so this is ruamel disagreeing with PyYAML
        raise ConfigError(f"{name}: cannot edit this file: {str(e).splitlines()[0]}") from e


def _mapping_indent(text: str) -> int:
    """The indentation of the first nested mapping key (ruamel guesses only the sequence indentation)."""
    for line in text.splitlines():
        match = re.match(r"( +)[^\s#-][^:#]*:(\s|$)", line)
        if match:
            return len(match.group(1))
    return 2


def _null(representer: BaseRepresenter, _: None) -> ScalarNode:
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _writers_seq(doc: CommentedMap, registry: str) -> CommentedSeq:
    """The writers list to edit: spec.writers, or spec.registries[<registry>].writers."""
    if doc.get("spec") is None:
        doc["spec"] = CommentedMap()
    holder = doc["spec"]
    if isinstance(holder.get("registries"), list):
        holder = next(r for r in holder["registries"] if r.get("name") == registry)
    if not isinstance(holder.get("writers"), CommentedSeq):
        holder["writers"] = CommentedSeq()
    writers: CommentedSeq = holder["writers"]
    return writers


def _entry(writers: CommentedSeq, identity: str) -> CommentedMap:
    entry: CommentedMap = next(item for item in writers if item.get("serviceAccount") == identity)
    return entry


def _new_entry(identity: str, prefixes: Prefixes, *, delete: bool, like: CommentedSeq) -> CommentedMap:
    entry = CommentedMap()
    entry["serviceAccount"] = identity
    entry["repositories"] = _sequence(prefixes, like=like)
    if delete:
        entry["delete"] = True
    return entry


def _sequence(prefixes: Prefixes, *, like: Iterable[object]) -> CommentedSeq:
    """A repositories list styled like the other writers' (flow `["*"]` unless they use block lists)."""
    seq = CommentedSeq(DoubleQuotedScalarString(p) for p in prefixes)
    block = any(isinstance(w.get("repositories"), CommentedSeq) and w["repositories"].fa.flow_style() is False
                for w in like if isinstance(w, CommentedMap))
    seq.fa.set_block_style() if block else seq.fa.set_flow_style()
    return seq


def _set_repositories(entry: CommentedMap, added: Prefixes, *, keep: Prefixes) -> None:
    """Keep the listed items whose prefix is in `keep`, as the user spelled them, then append `added`."""
    current = entry.get("repositories")
    if not isinstance(current, CommentedSeq):
        entry["repositories"] = _sequence(keep + added, like=[])
        return
    for item in [i for i in current if names.normalize_prefix(str(i)) not in keep]:
        current.remove(item)
    current.extend(DoubleQuotedScalarString(p) for p in added)


def _keep_end_comments(doc: CommentedMap, writers: CommentedSeq) -> None:
    """An empty flow list drops the comments that followed its last item: hand them to the document's end."""
    end = getattr(writers.ca, "end", None)
    spec = doc["spec"]
    if end and list(spec)[-1] == "writers" and list(doc)[-1] == "spec":
        doc.ca.end = [*end, *(getattr(doc.ca, "end", None) or [])]
        writers.ca.end = []


def _without_entry(text: str, writers: CommentedSeq, index: int) -> str:
    """`text` without the lines of writers[index]: the item's line and what is indented deeper than its dash."""
    lines = text.splitlines(keepends=True)
    start = writers.lc.item(index)[0]
    dash = len(lines[start]) - len(lines[start].lstrip(" "))
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip(" ")) > dash):
        end += 1
    return "".join(lines[:start] + lines[end:])


def _comments(text: str) -> Counter[str]:
    return Counter(line.strip() for line in text.splitlines() if line.lstrip().startswith("#"))


def _finish(yaml: YAML, doc: CommentedMap, *, name: str, identity: str, before: Writer | None, note: str = "",
            old_text: str = "", registry: str | None = None) -> Edit:
    out = io.StringIO()
    yaml.dump(doc, out)
    new_text = out.getvalue()
    lost = _comments(old_text) - _comments(new_text)
    if lost:  # never drop a user's comment silently
        raise ConfigError(f"{name}: this edit would lose the comment {next(iter(lost))!r}; "
                          "edit spec.writers by hand")
    after = _writer(config.from_text(new_text, name=name), identity, registry)  # the whole new file must validate
    return Edit(text=new_text, before=before, after=after, note=note)
