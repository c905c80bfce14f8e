"""Reads where a workload's pods may run (`nodeSelector`, `tolerations`, `affinity`, named and shaped like the pod
spec's fields) and which Secrets pull their images (`imagePullSecrets`), checked as the API server checks them
(ValidateTolerations, ValidateAffinity) but failing with the config's file, line and field path.

Hand-written on purpose: the schema validators (kubernetes-validate, the client's models) are not runtime
dependencies, know nothing of lines in meshreg.yaml, and leave out the cross-field rules checked here (an operator's
values, tolerationSeconds only with NoExecute, Gt/Lt taking one integer).

Every field is read on its own (`Reader.attempt`), so one run reports every problem; a rule across fields (an
operator's values) is checked only once the fields it needs have read."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from meshreg.config import names
from meshreg.config.model import Scheduling
from meshreg.config.reader import REQUIRED, Attempt, Reader
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
Item = Callable[[Reader, object, Path], Any]


def read(r: Reader, m: dict[str, Any], path: Path, *, inherit: Scheduling | None = None) -> Scheduling:
    """The scheduling keys of the mapping `m` (read at `path`); a key that is absent takes `inherit`'s value."""
    base = inherit or Scheduling()
    selector = r.attempt(lambda: read_node_selector(r, m["nodeSelector"], path + ("nodeSelector",))
                         if r.given(m["nodeSelector"]) else base.node_selector)
    tolerations = r.attempt(lambda: tuple(_items(r, m["tolerations"], path + ("tolerations",), _toleration))
                            if r.given(m["tolerations"]) else base.tolerations)
    affinity = r.attempt(lambda: _affinity(r, m["affinity"], path + ("affinity",))
                         if r.given(m["affinity"]) else base.affinity)
    return Scheduling(node_selector=selector.value, tolerations=tolerations.value, affinity=affinity.value)


def read_node_selector(r: Reader, value: object, path: Path, *,
                       what: str = "node labels") -> tuple[tuple[str, str], ...]:
    """Labels as KEY: VALUE (a nodeSelector, a label selector's matchLabels); every label is checked."""
    if not r.given(value) or not isinstance(value, dict):
        r.fail(path, f"expected a mapping of {what} (e.g. {{kubernetes.io/os: linux}})")
    with r.checks():
        for key, label in value.items():
            r.attempt(partial(r.string, key, path + (key,), _check_key))
            r.attempt(partial(r.string, label, path + (key,), _check_value))
    return tuple(sorted(value.items()))


def read_pull_secrets(r: Reader, value: object, path: Path) -> tuple[str, ...]:
    """`imagePullSecrets` as the pod spec has it: a list of {name: SECRET}, each named once."""
    read = r.each(r.sequence(value, path, "a list"), path, partial(_pull_secret, r))
    seen: dict[str, int] = {}
    with r.checks():
        for i, name in enumerate(a.get() for a in read):
            if name is None:
                continue
            if name in seen:
                r.record(path + (i, "name"), f"{name!r} is listed twice (imagePullSecrets[{seen[name]}])")
            seen.setdefault(name, i)
    return tuple(a.value for a in read)


def _pull_secret(r: Reader, value: object, path: Path) -> str:
    m = r.mapping(value, path, PULL_SECRET)
    return r.string(m["name"], path + ("name",), names.check_subdomain)


def _check_key(value: str) -> str | None:
    return names.check_label_key(value, expected=_KEY)


def _check_value(value: str) -> str | None:
    return names.check_label_value(value, expected=_VALUE)


def _items(r: Reader, value: object, path: Path, read_item: Item) -> list[Any]:
    """Every item of a list read by `read_item`, each on its own; Invalid (silently) if any did not read."""
    items = r.sequence(value, path, "a list")
    return [a.value for a in r.each(items, path, partial(read_item, r))]


def _optional(r: Reader, m: dict[str, Any], key: str, path: Path, read_value: Item) -> Attempt[Any]:
    """`read_value` of m[key] where the key is set; None where it is not."""
    return r.attempt(lambda: read_value(r, m[key], path + (key,)) if r.given(m[key]) else None)


def _toleration(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, TOLERATION)
    key = r.attempt(lambda: r.string(m["key"], path + ("key",), lambda v: _check_key(v) if v else None,
                                     nullable=True))
    operator = r.attempt(lambda: r.string(m["operator"], path + ("operator",), lambda v: None if v in (
        "Equal", "Exists") else f"{v!r} is not a toleration operator (Equal or Exists)", nullable=True))
    value_ = r.attempt(lambda: _toleration_value(r, m["value"], path + ("value",), operator=operator.get()))
    effect = r.attempt(lambda: r.string(m["effect"], path + ("effect",), lambda v: None if v in EFFECTS else
                                        f"{v!r} is not a taint effect ({', '.join(EFFECTS)}; leave it out for all "
                                        "of them)", nullable=True))
    seconds = r.attempt(lambda: _seconds(r, m["tolerationSeconds"], path + ("tolerationSeconds",),
                                         effect=effect.value))
    if not key.value and operator.value != "Exists":
        r.fail(path, "a toleration without a key must have operator: Exists (it then tolerates every taint)")
    out = {"key": key.value, "operator": operator.value, "value": value_.value, "effect": effect.value,
           "tolerationSeconds": seconds.value}
    return {k: v for k, v in out.items() if v is not None}


def _toleration_value(r: Reader, value: object, path: Path, *, operator: str | None) -> str | None:
    if r.given(value) and operator == "Exists":
        r.fail(path, "a toleration with operator Exists matches any value: leave value out")
    return r.string(value, path, _check_value, nullable=True)


def _seconds(r: Reader, value: object, path: Path, *, effect: str | None) -> int | None:
    """tolerationSeconds: how long a NoExecute taint is tolerated before eviction."""
    if not r.given(value):
        return None
    if effect != "NoExecute":
        r.fail(path, "only a NoExecute toleration has tolerationSeconds")
    return r.integer(value, path, low=0, high=2**62)


def _affinity(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, AFFINITY)
    read = {"nodeAffinity": _optional(r, m, "nodeAffinity", path, _node_affinity),
            "podAffinity": _optional(r, m, "podAffinity", path, _pod_affinity),
            "podAntiAffinity": _optional(r, m, "podAntiAffinity", path, _pod_affinity)}
    return _set(read)


def _set(read: dict[str, Attempt[Any]]) -> dict[str, Any]:
    """The fields that are set, once every one of them has read."""
    return {key: a.value for key, a in read.items() if a.value is not None}


def _node_affinity(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, TERMS)
    return _set({REQUIRED_TERMS: _optional(r, m, REQUIRED_TERMS, path, _node_selector),
                 PREFERRED_TERMS: _optional(r, m, PREFERRED_TERMS, path, partial(_each_weighted, keys=PREFERENCE,
                                                                                 read_term=_node_term))})


def _node_selector(r: Reader, value: object, path: Path) -> dict[str, Any]:
    """A required node affinity: {nodeSelectorTerms: [...]}, at least one term."""
    selector = r.mapping(value, path, NODE_SELECTOR)
    p = path + ("nodeSelectorTerms",)
    terms = r.sequence(selector["nodeSelectorTerms"], p, "a list")
    if not terms:
        r.fail(p, "expected at least one term (a node must match one of them)")
    return {"nodeSelectorTerms": _items(r, terms, p, _node_term)}


def _each_weighted(r: Reader, value: object, path: Path, *, keys: dict[str, Any], read_term: Term) -> list[Any]:
    return _items(r, value, path, partial(_weighted, keys=keys, read_term=read_term))


def _weighted(r: Reader, value: object, path: Path, *, keys: dict[str, Any], read_term: Term) -> dict[str, Any]:
    key = list(keys)[1]  # the term beside the weight
    m = r.mapping(value, path, keys)
    weight = r.attempt(lambda: r.integer(m["weight"], path + ("weight",), low=1, high=100))
    term = r.attempt(lambda: read_term(r, m[key], path + (key,)))
    return {"weight": weight.value, key: term.value}


def _node_term(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, NODE_TERM)
    out = _set({"matchExpressions": _optional(r, m, "matchExpressions", path, partial(
                    _each_requirement, operators=NODE_OPERATORS)),
                "matchFields": _optional(r, m, "matchFields", path, partial(
                    _each_requirement, operators=("In", "NotIn"), field=True))})
    if not out:
        r.fail(path, "an empty term matches no node: give matchExpressions or matchFields")
    return out


def _each_requirement(r: Reader, value: object, path: Path, *, operators: tuple[str, ...],
                      field: bool = False) -> list[Any]:
    return _items(r, value, path, partial(_requirement, operators=operators, field=field))


def _requirement(r: Reader, value: object, path: Path, *, operators: tuple[str, ...],
                 field: bool = False) -> dict[str, Any]:
    """One {key, operator, values} with the rules of its operator (matchFields: metadata.name, In or NotIn)."""
    m = r.mapping(value, path, REQUIREMENT)
    key = r.attempt(lambda: r.string(m["key"], path + ("key",), _check_field if field else _check_key))
    operator = r.attempt(lambda: r.string(m["operator"], path + ("operator",), lambda v: None if v in operators
                                          else f"{v!r} is not an operator here ({', '.join(operators)})"))
    values = r.attempt(lambda: r.strings(m["values"], path + ("values",)) if r.given(m["values"]) else None)
    problem = _values_problem(operator.value, values.value or [], field=field)
    if problem:
        r.fail(path + ("values",), problem)
    return {"key": key.value, "operator": operator.value,
            **({"values": values.value} if values.value is not None else {})}


def _check_field(value: str) -> str | None:
    return None if value == "metadata.name" else f"{value!r}: matchFields supports only metadata.name"


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
    return _set({REQUIRED_TERMS: _optional(r, m, REQUIRED_TERMS, path, partial(_items_of, read_item=_pod_term)),
                 PREFERRED_TERMS: _optional(r, m, PREFERRED_TERMS, path, partial(
                     _each_weighted, keys=WEIGHTED_POD_TERM, read_term=_pod_term))})


def _items_of(r: Reader, value: object, path: Path, *, read_item: Item) -> list[Any]:
    return _items(r, value, path, read_item)


def _pod_term(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, POD_TERM)
    read = {"labelSelector": _optional(r, m, "labelSelector", path, _label_selector),
            "namespaceSelector": _optional(r, m, "namespaceSelector", path, _label_selector),
            "namespaces": _optional(r, m, "namespaces", path, _namespaces),
            "topologyKey": r.attempt(lambda: r.string(m["topologyKey"], path + ("topologyKey",), _check_key)),
            "matchLabelKeys": _optional(r, m, "matchLabelKeys", path, _label_keys),
            "mismatchLabelKeys": _optional(r, m, "mismatchLabelKeys", path, _label_keys)}
    return _set(read)


def _namespaces(r: Reader, value: object, path: Path) -> list[str]:
    return r.strings(value, path, names.check_label)


def _label_keys(r: Reader, value: object, path: Path) -> list[str]:
    return r.strings(value, path, _check_key)


def _label_selector(r: Reader, value: object, path: Path) -> dict[str, Any]:
    m = r.mapping(value, path, LABEL_SELECTOR)
    return _set({"matchLabels": _optional(r, m, "matchLabels", path, _match_labels),
                 "matchExpressions": _optional(r, m, "matchExpressions", path, partial(
                     _each_requirement, operators=LABEL_OPERATORS))})


def _match_labels(r: Reader, value: object, path: Path) -> dict[str, str]:
    return dict(read_node_selector(r, value, path, what="labels"))
