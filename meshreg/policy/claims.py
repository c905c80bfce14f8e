"""What a JWT shows an AuthorizationPolicy, as Istio 1.22 and later translates it for Envoy.

A request principal `<iss>/<sub>` is split at its *last* '/' and each half is matched against the token's `iss` and
`sub` claims (the payload Envoy's jwt_authn filter keeps); `*` stands for a whole half or a prefix/suffix of it.
A `when` condition on `request.auth.claims[NAME]` (or `[A][B]` for a nested claim) matches a claim whose value is a
matching string or a list with a matching element; `notValues` matches everything else, a missing claim included.
Without a valid token no request principal and no claim matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from meshreg.objects import Object
from meshreg.policy.strings import istio_match

Claims = dict[str, Any]  # a JWT's payload, as the RequestAuthentication accepted it
_CLAIM_KEY = re.compile(r"request\.auth\.claims((?:\[[^\[\]]+\])+)")


def _any(value: str) -> bool:
    return value != ""


def _exact(text: str) -> Callable[[str], bool]:
    return lambda value: value == text


def split(pattern: str) -> tuple[Callable[[str], bool], Callable[[str], bool]]:
    """Matchers for the issuer and the subject of a request-principal pattern, as Istio builds them."""
    idx = pattern.rfind("/")
    found = idx >= 0
    iss, sub = (pattern[:idx], pattern[idx + 1:]) if found else (pattern, "")
    if pattern == "*":
        return _any, _any
    if pattern.startswith("*"):
        if found:
            return (_any if iss == "*" else lambda v: v.endswith(iss[1:])), _exact(sub)
        return _any, lambda v: v.endswith(pattern[1:])
    if pattern.endswith("*"):
        if found:
            return _exact(iss), (_any if sub == "*" else lambda v: v.startswith(sub[:-1]))
        return lambda v: v.startswith(pattern[:-1]), _any
    return _exact(iss), _exact(sub)


def _request_principal(pattern: str, claims: Claims) -> bool:
    iss, sub = claims.get("iss"), claims.get("sub")
    if not isinstance(iss, str) or not isinstance(sub, str):
        return False
    match_iss, match_sub = split(pattern)
    return match_iss(iss) and match_sub(sub)


def shown(claims: Claims | None) -> str:
    return f"{claims.get('iss')}/{claims.get('sub')}" if claims else "none (no valid JWT)"


def match_request_principals(values: list[Any], claims: Claims | None, *, negative: bool,
                             field: str) -> tuple[bool, str]:
    found = claims is not None and any(_request_principal(str(v), claims) for v in values)
    fact = f"request principal {shown(claims)} {'is' if found else 'is not'} in {field} [{', '.join(values)}]"
    return found != negative, fact


def evaluable(condition: Object) -> bool:
    """Whether meshreg evaluates this `when` condition offline (claims only)."""
    return _CLAIM_KEY.fullmatch(str(condition.get("key", ""))) is not None


def _claim(claims: Claims | None, key: str) -> object:
    value: object = claims
    for name in re.findall(r"\[([^\[\]]+)\]", key):
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _value_matches(pattern: str, value: object) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, str) and istio_match(pattern, v) for v in value)
    return isinstance(value, str) and istio_match(pattern, value)


def match_condition(condition: Object, claims: Claims | None) -> tuple[bool, str]:
    """One `when` condition on a claim: every `values` list must hold a match, no `notValues` entry may match."""
    key = condition["key"]
    value = _claim(claims, key) if claims else None
    label = f"{key[len('request.auth.'):]} {value!r}" if value is not None else f"{key} (absent)"
    facts = []
    for field in ("values", "notValues"):
        patterns = condition.get(field) or []
        if not patterns:
            continue
        found = any(_value_matches(str(p), value) for p in patterns)
        facts.append(f"{label} {'is' if found else 'is not'} in {field} [{', '.join(map(str, patterns))}]")
        if found == (field == "notValues"):
            return False, facts[-1]
    return True, " and ".join(facts)
