"""Where verify's probes may run: only the tolerations and node selector the user gives (`--toleration`,
`--node-selector`), and, for the node-proxy and kubelet probes, which are bound to one node, the rules the scheduler
would apply to it: Ready, schedulable (not cordoned), every NoSchedule and NoExecute taint tolerated, the node
selector matched, and a ready node-proxy pod there to probe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshreg.cluster.api import Object
from meshreg.config.names import check_label_key, check_label_value

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
BLOCKING = ("NoSchedule", "NoExecute")  # PreferNoSchedule only steers the scheduler
_KEY = "an optional DNS prefix and '/', then a name of at most 63 characters"
_VALUE = "at most 63 letters, digits, '-', '_' or '.'"


@dataclass(frozen=True)
class Placement:
    """The tolerations and node selector every probe pod gets."""

    tolerations: tuple[dict[str, str], ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()

    def pod_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.tolerations:
            out["tolerations"] = [dict(t) for t in self.tolerations]
        if self.node_selector:
            out["nodeSelector"] = dict(self.node_selector)
        return out


ANYWHERE = Placement()  # no toleration, no node selector: the default


def parse_toleration(text: str) -> dict[str, str]:
    """kubectl's taint syntax as a toleration: KEY=VALUE:EFFECT (Equal), KEY:EFFECT or KEY (Exists), and without
    the effect every effect; `:EFFECT` alone tolerates every taint of that effect. ValueError says what is wrong."""
    key, value, effect = _split(text)
    out = {"key": key, "operator": "Exists"} if value is None else {"key": key, "operator": "Equal", "value": value}
    if not key:
        del out["key"]
    return {**out, "effect": effect} if effect else out


def _split(text: str) -> tuple[str, str | None, str]:
    """(key, value or None, effect or "") of KEY[=VALUE][:EFFECT], each checked."""
    spec, sep, effect = text.rpartition(":") if ":" in text else (text, "", "")
    if sep and effect not in EFFECTS:
        raise ValueError(f"{effect!r} is not a taint effect ({', '.join(EFFECTS)})")
    key, eq, value = spec.partition("=")
    if not key and (eq or not sep):
        raise ValueError("expected KEY[=VALUE][:EFFECT] (e.g. dedicated=ci:NoSchedule) or :EFFECT")
    _check_label(key, value if eq else None)
    return key, (value if eq else None), effect


def _check_label(key: str, value: str | None) -> None:
    """ValueError when `key` (if any) is no label key or `value` (if any) no label value."""
    problem = (check_label_key(key, expected=_KEY) if key else None) or \
        (check_label_value(value, expected=_VALUE) if value is not None else None)
    if problem:
        raise ValueError(problem)


def parse_label(text: str) -> tuple[str, str]:
    """KEY=VALUE of a node selector; ValueError says what is wrong."""
    key, eq, value = text.partition("=")
    if not eq or not key:
        raise ValueError("expected KEY=VALUE (e.g. kubernetes.io/os=linux)")
    _check_label(key, value)
    return key, value


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Kubernetes' ToleratesTaint: the effect (empty: any), the key (empty with Exists: any), then Exists, or Equal
    values."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key", "") != taint.get("key") and not (not toleration.get("key")
                                                                 and toleration.get("operator") == "Exists"):
        return False
    return toleration.get("operator") == "Exists" or toleration.get("value", "") == taint.get("value", "")


def untolerated(node: Object, tolerations: tuple[dict[str, str], ...]) -> list[str]:
    """The node's NoSchedule and NoExecute taints that none of `tolerations` tolerates, as KEY[=VALUE]:EFFECT."""
    return [_taint_text(t) for t in (node.get("spec") or {}).get("taints") or []
            if t.get("effect") in BLOCKING and not any(tolerates(x, t) for x in tolerations)]


def _taint_text(taint: dict[str, Any]) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key', '')}{value}:{taint.get('effect')}"


def ready(node: Object) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def unfit(node: Object, placement: Placement, *, proxied: set[str] | None) -> str | None:
    """Why the node-proxy and kubelet probes cannot run on `node` (None: they can). `proxied`: the nodes that run
    a ready node-proxy pod (None: no node proxy is deployed, so none is needed)."""
    for check in (_not_ready, _cordoned, _unselected, _tainted):
        problem = check(node, placement)
        if problem:
            return problem
    if proxied is not None and node["metadata"]["name"] not in proxied:
        return "no ready node-proxy pod there"
    return None


def _not_ready(node: Object, placement: Placement) -> str | None:
    return None if ready(node) else "not Ready"


def _cordoned(node: Object, placement: Placement) -> str | None:
    return "cordoned (spec.unschedulable)" if (node.get("spec") or {}).get("unschedulable") else None


def _unselected(node: Object, placement: Placement) -> str | None:
    labels = node["metadata"].get("labels") or {}
    missing = [f"{k}={v}" for k, v in placement.node_selector if labels.get(k) != v]
    return f"does not match --node-selector {', '.join(missing)}" if missing else None


def _tainted(node: Object, placement: Placement) -> str | None:
    taints = untolerated(node, placement.tolerations)
    if not taints:
        return None
    return f"tainted {', '.join(taints)}, which the probes do not tolerate (--toleration {taints[0]})"

