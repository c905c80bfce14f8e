"""Envoy RBAC filters as istiod generates them and as tests/support/lab/rbac.py translates them, brought to one
shape, so that what differs in meaning stands out from what differs only in spelling.

Spelling only: `exact_match: X` (Istio 1.14, deprecated) and `string_match: {exact: X}` (newer Istio, the lab);
`google_re2: {}` in a regex; an `and`/`or` set of one element and the element itself, the order of a set's members,
and an `or` set inside an `or` set (an `and` inside an `and`) and its members spliced in; istiod's rule names
`ns[<ns>]-policy[<name>]-rule[<i>]` and the lab's `<name>[<i>]`; the stat prefix of shadow rules; and istiod's
rule for an ALLOW policy without rules (`not any` for both permission and principal), which matches nothing, as
the lab's absent rule does.
"""

from __future__ import annotations

import json
import re
from typing import Any

_ISTIO_KEY = re.compile(r"ns\[[^\]]*\]-policy\[(.*)\]-rule\[(\d+)\]")
_MATCHES_NOTHING = {"permissions": [{"not_rule": {"any": True}}], "principals": [{"not_id": {"any": True}}]}
_HEADER_SPELLINGS = {"exact_match": "exact", "prefix_match": "prefix", "suffix_match": "suffix"}


def canonical(value: Any) -> Any:
    """`value` with every spelling-only difference removed."""
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: canonical(v) for k, v in value.items() if k != "google_re2"}
    for spelled, kind in _HEADER_SPELLINGS.items():
        if spelled in out:
            out["string_match"] = {kind: out.pop(spelled)}
    for key, inner in _SETS:
        if set(out) == {key}:
            members = []  # a set: its order means nothing, and a set of the same kind inside it is spliced in
            for member in out[key][inner]:
                members += member[key][inner] if set(member) == {key} else [member]
            members.sort(key=_order)
            return members[0] if len(members) == 1 else {key: {inner: members}}
    return out


_SETS = (("and_rules", "rules"), ("or_rules", "rules"), ("and_ids", "ids"), ("or_ids", "ids"))


def _order(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _alternatives(entries: list[Any], key: str, inner: str) -> list[Any]:
    """A rule's permissions or principals (a list, ORed) as one sorted list of alternatives."""
    out = []
    for entry in (canonical(e) for e in entries):
        out += entry[key][inner] if set(entry) == {key} else [entry]
    return sorted(out, key=_order)


def rule(value: dict) -> dict:
    """One RBAC policy (a rule) in the one shape."""
    return {"permissions": _alternatives(value.get("permissions", []), "or_rules", "rules"),
            "principals": _alternatives(value.get("principals", []), "or_ids", "ids")}


def policies(filters: list[dict], *, rename=None) -> dict[str, dict[str, Any]]:
    """{action: {rule name: canonical rule}} of RBAC filters; `rename` maps a policy name (istiod's `-g<N>` names)."""
    out: dict[str, dict[str, Any]] = {}
    for typed in filters:
        typed = typed.get("typed_config", typed)
        rules = typed.get("rules", {})
        action = rules.get("action", "ALLOW")
        for key, value in rules.get("policies", {}).items():
            if value == _MATCHES_NOTHING:
                continue
            istio = _ISTIO_KEY.fullmatch(key)
            name = f"{rename(istio.group(1)) if rename else istio.group(1)}[{istio.group(2)}]" if istio else key
            out.setdefault(action, {})[name] = rule(value)
    return out


def differences(real: list[dict], translated: list[dict], *, rename=None) -> list[str]:
    """Each rule whose meaning-bearing shape differs between istiod's filters and the lab's, one line each."""
    a, b = policies(real, rename=rename), policies(translated)
    out = []
    for action in sorted(set(a) | set(b)):
        for name in sorted(set(a.get(action, {})) | set(b.get(action, {}))):
            left, right = a.get(action, {}).get(name), b.get(action, {}).get(name)
            if left != right:
                out.append(f"{action} {name}: istiod {left} / lab {right}")
    return out
