"""Keeps every rendered AuthorizationPolicy small enough for the API server, whatever the number of writers.

etcd refuses a request over about 1.5 MiB, so 10,000 writers in one policy already come close and 30,000 are
refused. Rules are split, then packed into as many policies as needed, each at most MAX_OBJECT_BYTES of JSON.

Rules whose source lists `principals` split freely: rules are ORed, so a rule for A+B is the same as one for A and
one for B. The DENY rule "writes from anyone not in W" (`notPrincipals: W`) cannot be cut like that: a writer
missing from one piece's list would be denied by that piece. It is rewritten over principal prefixes instead. Pick
prefixes p1..pk (from a trie of W, so each prefix covers few enough writers) and the writers E that end exactly
where the trie was cut; then these rules deny exactly the same requests:

- for each group G of prefixes: `principals: [p*, for p in G]`, `notPrincipals: [w in W starting with some p in G]`;
- a catch-all: `notPrincipals: [p1*, ..., pk*] + E`.

A principal x in W is matched by no rule: the rule of any prefix it starts with lists it, and the catch-all
excludes it (it starts with a prefix, or is in E). A principal x not in W (or no principal at all) is denied:
if it starts with some prefix p, p's rule matches (x is not listed there, since only members of W are); if it
starts with none and is not in E, the catch-all matches.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable

from meshreg.errors import ConfigError
from meshreg.objects import Object

MAX_OBJECT_BYTES = 512 * 1024  # a third of etcd's 1.5 MiB request limit: room for managedFields and growth
_Class = tuple[str, list[str]]  # a principal prefix and the writers that start with it


def size(obj: object) -> int:
    """Bytes of `obj` as compact JSON (what the client sends and the server stores, near enough)."""
    return len(json.dumps(obj, separators=(",", ":")))


def pack(rules: list[Object], *, wrap: Callable[[list[Object], int], Object], max_bytes: int,
         what: str) -> list[Object]:
    """`rules` split where needed and packed, in order, into objects `wrap(rules, index)` of at most max_bytes."""
    room = max_bytes - size(wrap([], 99)) - 1
    objects: list[Object] = []
    current: list[Object] = []
    used = 0
    for rule in (piece for r in rules for piece in split(r, room=room, what=what)):
        cost = size(rule) + 1
        if current and used + cost > room:
            objects.append(wrap(current, len(objects)))
            current, used = [], 0
        current.append(rule)
        used += cost
    if current or not objects:
        objects.append(wrap(current, len(objects)))
    return objects


def split(rule: Object, *, room: int, what: str) -> list[Object]:
    """`rule` as rules of at most `room` bytes that match exactly the same requests."""
    if size(rule) <= room:
        return [rule]
    sources = rule.get("from") or [{}]
    source = sources[0].get("source") or {} if len(sources) == 1 else {}
    if set(source) == {"principals"}:
        return [_with(rule, principals=chunk) for chunk in _chunks(rule, "principals", source["principals"], room)]
    if set(source) == {"notPrincipals"}:
        return _exclusions(rule, sorted(source["notPrincipals"]), room=room, what=what)
    raise _too_large(rule, room, what)


def _with(rule: Object, **source: list[str]) -> Object:
    out = copy.deepcopy({k: v for k, v in rule.items() if k != "from"})
    return {"from": [{"source": source}], **out}


def _cost(values: Iterable[str]) -> int:
    return sum(len(json.dumps(v)) + 1 for v in values)


def _chunks(rule: Object, field: str, values: list[str], room: int) -> list[list[str]]:
    base = size(_with(rule, **{field: []}))
    chunks: list[list[str]] = []
    current: list[str] = []
    used = base
    for value in values:
        cost = len(json.dumps(value)) + 1
        if current and used + cost > room:
            chunks.append(current)
            current, used = [], base
        current.append(value)
        used += cost
    chunks.append(current)
    return chunks


def _exclusions(rule: Object, writers: list[str], *, room: int, what: str) -> list[Object]:
    """The catch-all DENY over principal prefixes (see the module docstring)."""
    budget = room - size(_with(rule, principals=[], notPrincipals=[]))
    classes = _classes(writers, "", budget)
    exact = [w for prefix, members in classes if prefix is None for w in members]
    groups = _pack_classes([(p, members) for p, members in classes if p is not None], budget)
    catch_all = _with(rule, notPrincipals=[p + "*" for g in groups for p, _ in g] + exact)
    if size(catch_all) > room:
        raise _too_large(catch_all, room, what)
    return [catch_all, *_prefix_rules(rule, groups)]


def _pack_classes(classes: list[_Class], budget: int) -> list[list[_Class]]:
    """The classes in order, in groups whose prefixes and writers fit `budget` (the last group may be empty)."""
    groups: list[list[_Class]] = []
    current: list[_Class] = []
    used = 0
    for prefix, members in classes:
        cost = _cost([prefix + "*"]) + _cost(members)
        if current and used + cost > budget:
            groups.append(current)
            current, used = [], 0
        current.append((prefix, members))
        used += cost
    groups.append(current)
    return groups


def _prefix_rules(rule: Object, groups: list[list[_Class]]) -> list[Object]:
    """One rule per group: its prefixes, except the writers under them."""
    return [_with(rule, principals=[p + "*" for p, _ in group], notPrincipals=[w for _, ms in group for w in ms])
            for group in groups if group]


def _classes(writers: list[str], prefix: str, budget: int) -> list[tuple[str | None, list[str]]]:
    """A trie cut of `writers` (all starting with `prefix`): (prefix, its writers) classes that fit `budget`,
    and (None, writers that end exactly at a cut)."""
    if prefix and _cost([prefix + "*"]) + _cost(writers) <= budget:
        return [(prefix, writers)]
    exact = [w for w in writers if w == prefix]
    children: dict[str, list[str]] = {}
    for w in writers:
        if w != prefix:
            children.setdefault(w[len(prefix)], []).append(w)
    out: list[tuple[str | None, list[str]]] = [(None, exact)] if exact else []
    for char in sorted(children):
        out += _classes(children[char], prefix + char, budget)
    return out


def _too_large(rule: Object, room: int, what: str) -> ConfigError:
    return ConfigError(f"{what}: one policy rule needs {size(rule)} bytes, more than the {room} bytes a rule may "
                       f"take in one AuthorizationPolicy (meshreg keeps each under {MAX_OBJECT_BYTES // 1024} KiB; "
                       "etcd stores at most about 1.5 MiB per object): list fewer repository prefixes per writer")
