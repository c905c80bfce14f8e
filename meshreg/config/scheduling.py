"""Reads where a workload's pods may run (`nodeSelector`, `tolerations`, `affinity`, named and shaped like the pod
spec's fields) and which Secrets pull their images (`imagePullSecrets`), checked as the API server checks them
(ValidateTolerations, ValidateAffinity) but failing with the config's file, line and field path.

Hand-written on purpose: the schema validators (kubernetes-validate, the client's models) are not runtime
dependencies, know nothing of lines in meshreg.yaml, and leave out the cross-field rules checked here (an operator's
values, tolerationSeconds only with NoExecute, Gt/Lt taking one integer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meshreg.config import names
from meshreg.config.model import Scheduling
from meshreg.config.reader import REQUIRED, Reader
from meshreg.config.source import Path

KEYS: dict[str, Any] = {"nodeSelector": None, "tolerations": None, "affinity": None}
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
NODE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
LABEL_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
REQUIRED_TERMS = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED_TERMS = "preferredDuringSchedulingIgnoredDuringExecution"
# The reader's key tables (meshreg.config.schema builds the JSON Schema from them).
TOLERATION: dict[str, Any] = {"key": None, "operator": None, "value": None, "effect": None, "tolerationSeconds": None}
AFFINITY: dict[str, Any] = {"nodeAffinity": None, "podAffinity": None, "podAntiAffinity": None}
TERMS: dict[str, Any] = {REQUIRED_TERMS: None, PREFERRED_TERMS: None}  # node, pod and pod anti-affinity
NODE_SELECTOR: dict[str, Any] = {"nodeSelectorTerms": REQUIRED}
NODE_TERM: dict[str, Any] = {"matchExpressions": None, "matchFields": None}
REQUIREMENT: dict[str, Any] = {"key": REQUIRED, "operator": REQUIRED, "values": None}
PREFERENCE: dict[str, Any] = {"weight": REQUIRED, "preference": REQUIRED}
WEIGHTED_POD_TERM: dict[str, Any] = {"weight": REQUIRED, "podAffinityTerm": REQUIRED}
POD_TERM: dict[str, Any] = {"labelSelector": None, "namespaceSelector": None, "namespaces": None,
                            "topologyKey": REQUIRED, "matchLabelKeys": None, "mismatchLabelKeys": None}
LABEL_SELECTOR: dict[str, Any] = {"matchLabels": None, "matchExpressions": None}
PULL_SECRET: dict[str, Any] = {"name": REQUIRED}
_KEY = "an optional DNS prefix and '/', then a name of at most 63 characters"
_VALUE = "at most 63 letters, digits, '-', '_' or '.'"
Term = Callable[[Reader, object, Path], dict[str, Any]]


def read(r: Reader, m: dict[str, Any], path: Path, *, inherit: Scheduling | None = None) -> Scheduling:
    """The scheduling keys of the mapping `m` (read at `path`); a key that is absent takes `inherit`'s value."""
    base = inherit or Scheduling()
    selector = base.node_selector if m["nodeSelector"] is None else \
        read_node_selector(r, m["nodeSelector"], path + ("nodeSelector",))
    tolerations = base.tolerations if m["tolerations"] is None else \
        tuple(_toleration(r, t, path + ("tolerations", i)) for i, t in enumerate(_list(r, m["tolerations"],
                                                                                         path + ("tolerations",))))
    affinity = base.affinity if m["affinity"] is None else _affinity(r, m["affinity"], path + ("affinity",))
    return Scheduling(node_selector=selector, tolerations=tolerations, affinity=affinity)


def read_node_selector(r: Reader, value: object, path: Path, *,
                       what: str = "node labels") -> tuple[tuple[str, str], ...]:
    """Labels as KEY: VALUE (a nodeSelector, a label selector's matchLabels)."""
    if not isinstance(value, dict):
        r.fail(path, f"expected a mapping of {what} (e.g. {{kubernetes.io/os: linux}})")
    for key, label in value.items():
        r.string(key, path + (key,), lambda v: names.check_label_key(v, expected=_KEY))
        r.string(label, path + (key,), lambda v: names.check_label_value(v, expected=_VALUE))
    return tuple(sorted(value.items()))


def read_pull_secrets(r: Reader, value: object, path: Path) -> tuple[str, ...]:
    """`imagePullSecrets` as the pod spec has it: a list of {name: SECRET}."""
    seen: dict[str, int] = {}
    for i, item in enumerate(_list(r, value, path)):
        m = r.mapping(item, path + (i,), PULL_SECRET)
        name = r.string(m["name"], path + (i, "name"), names.check_subdomain)
        if name in seen:
            r.fail(path + (i, "name"), f"{name!r} is listed twice (imagePullSecrets[{seen[name]}])")
        seen[name] = i
    return tuple(seen)


def _list(r: Reader, value: object, path: Path) -> list[Any]:
    if not isinstance(value, list):
        r.fail(path, "expected a list")
    return value


def _toleration(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, TOLERATION)
    key = r.string(m["key"], path + ("key",), lambda v: names.check_label_key(v, expected=_KEY) if v else None,
                   nullable=True)
    operator = r.string(m["operator"], path + ("operator",), lambda v: None if v in ("Equal", "Exists") else
                        f"{v!r} is not a toleration operator (Equal or Exists)", nullable=True)
    if m["value"] is not None and operator == "Exists":
        r.fail(path + ("value",), "a toleration with operator Exists matches any value: leave value out")
    value_ = r.string(m["value"], path + ("value",), lambda v: names.check_label_value(v, expected=_VALUE),
                      nullable=True)
    if not key and operator != "Exists":
        r.fail(path, "a toleration without a key must have operator: Exists (it then tolerates every taint)")
    effect = r.string(m["effect"], path + ("effect",), lambda v: None if v in EFFECTS else
                      f"{v!r} is not a taint effect ({', '.join(EFFECTS)}; leave it out for all of them)",
                      nullable=True)
    out = {"key": key, "operator": operator, "value": value_, "effect": effect,
           "tolerationSeconds": _seconds(r, m["tolerationSeconds"], path + ("tolerationSeconds",), effect=effect)}
    return {k: v for k, v in out.items() if v is not None}


def _seconds(r: Reader, value: object, path: Path, *, effect: str | None) -> int | None:
    """tolerationSeconds: how long a NoExecute taint is tolerated before eviction."""
    if value is None:
        return None
    if effect != "NoExecute":
        r.fail(path, "only a NoExecute toleration has tolerationSeconds")
    return r.integer(value, path, low=0, high=2**62)


def _affinity(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, AFFINITY)
    out = {}
    if m["nodeAffinity"] is not None:
        out["nodeAffinity"] = _node_affinity(r, m["nodeAffinity"], path + ("nodeAffinity",))
    for kind in ("podAffinity", "podAntiAffinity"):
        if m[kind] is not None:
            out[kind] = _pod_affinity(r, m[kind], path + (kind,))
    return out


def _node_affinity(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, TERMS)
    out: dict[str, Any] = {}
    if m[REQUIRED_TERMS] is not None:
        p = path + (REQUIRED_TERMS,)
        selector = r.mapping(m[REQUIRED_TERMS], p, NODE_SELECTOR)
        terms = _list(r, selector["nodeSelectorTerms"], p + ("nodeSelectorTerms",))
        if not terms:
            r.fail(p + ("nodeSelectorTerms",), "expected at least one term (a node must match one of them)")
        out[REQUIRED_TERMS] = {"nodeSelectorTerms": [_node_term(r, t, p + ("nodeSelectorTerms", i))
                                                     for i, t in enumerate(terms)]}
    if m[PREFERRED_TERMS] is not None:
        p = path + (PREFERRED_TERMS,)
        out[PREFERRED_TERMS] = [_weighted(r, t, p + (i,), PREFERENCE, _node_term)
                                for i, t in enumerate(_list(r, m[PREFERRED_TERMS], p))]
    return out


def _weighted(r: Reader, value: object, path: Path, keys: dict[str, Any], read_term: Term) -> dict[str, Any]:
    key = list(keys)[1]  # the term beside the weight
    m = r.mapping(value, path, keys)
    return {"weight": r.integer(m["weight"], path + ("weight",), low=1, high=100),
            key: read_term(r, m[key], path + (key,))}


def _node_term(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, NODE_TERM)
    out = {}
    for kind in ("matchExpressions", "matchFields"):
        if m[kind] is not None:
            p = path + (kind,)
            out[kind] = [_requirement(r, e, p + (i,), NODE_OPERATORS, field=kind == "matchFields")
                         for i, e in enumerate(_list(r, m[kind], p))]
    if not out:
        r.fail(path, "an empty term matches no node: give matchExpressions or matchFields")
    return out


def _requirement(r: Reader, value: object, path: Path, operators: tuple[str, ...], *,
                 field: bool = False) -> dict[str, Any]:
    """One {key, operator, values} with the rules of its operator."""
    m = r.mapping(value, path, REQUIREMENT)
    if field:
        r.string(m["key"], path + ("key",), lambda v: None if v == "metadata.name" else
                 f"{v!r}: matchFields supports only metadata.name")
        operators = ("In", "NotIn")
    else:
        r.string(m["key"], path + ("key",), lambda v: names.check_label_key(v, expected=_KEY))
    operator = r.string(m["operator"], path + ("operator",), lambda v: None if v in operators else
                        f"{v!r} is not an operator here ({', '.join(operators)})")
    values = r.strings(m["values"], path + ("values",)) if m["values"] is not None else []
    _check_values(r, operator, values, path + ("values",), field=field)
    return {"key": m["key"], "operator": operator, **({"values": values} if m["values"] is not None else {})}


def _check_values(r: Reader, operator: str, values: list[str], path: Path, *, field: bool) -> None:
    problem = _values_problem(operator, values, field=field)
    if problem:
        r.fail(path, problem)


def _values_problem(operator: str, values: list[str], *, field: bool) -> str | None:
    """What is wrong with the values of a requirement with `operator` (Kubernetes' rules), or None."""
    if operator in ("In", "NotIn"):
        if len(values) == 1 if field else values:
            return None
        return f"operator {operator} needs " + ("exactly one value" if field else "at least one value")
    if operator in ("Exists", "DoesNotExist"):
        return f"operator {operator} takes no values" if values else None
    if len(values) == 1 and values[0].lstrip("-").isdigit():
        return None
    return f"operator {operator} needs exactly one integer value"


def _pod_affinity(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, TERMS)
    out: dict[str, Any] = {}
    if m[REQUIRED_TERMS] is not None:
        p = path + (REQUIRED_TERMS,)
        out[REQUIRED_TERMS] = [_pod_term(r, t, p + (i,)) for i, t in enumerate(_list(r, m[REQUIRED_TERMS], p))]
    if m[PREFERRED_TERMS] is not None:
        p = path + (PREFERRED_TERMS,)
        out[PREFERRED_TERMS] = [_weighted(r, t, p + (i,), WEIGHTED_POD_TERM, _pod_term)
                                for i, t in enumerate(_list(r, m[PREFERRED_TERMS], p))]
    return out


def _pod_term(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, POD_TERM)
    out: dict[str, Any] = {}
    for kind in ("labelSelector", "namespaceSelector"):
        if m[kind] is not None:
            out[kind] = _label_selector(r, m[kind], path + (kind,))
    if m["namespaces"] is not None:
        out["namespaces"] = r.strings(m["namespaces"], path + ("namespaces",), names.check_label)
    out["topologyKey"] = r.string(m["topologyKey"], path + ("topologyKey",),
                                  lambda v: names.check_label_key(v, expected=_KEY))
    for kind in ("matchLabelKeys", "mismatchLabelKeys"):
        if m[kind] is not None:
            out[kind] = r.strings(m[kind], path + (kind,), lambda v: names.check_label_key(v, expected=_KEY))
    return out


def _label_selector(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, LABEL_SELECTOR)
    out: dict[str, Any] = {}
    if m["matchLabels"] is not None:
        out["matchLabels"] = dict(read_node_selector(r, m["matchLabels"], path + ("matchLabels",), what="labels"))
    if m["matchExpressions"] is not None:
        p = path + ("matchExpressions",)
        out["matchExpressions"] = [_requirement(r, e, p + (i,), LABEL_OPERATORS)
                                   for i, e in enumerate(_list(r, m["matchExpressions"], p))]
    return out
