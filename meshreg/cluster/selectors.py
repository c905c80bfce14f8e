"""Kubernetes label selectors, matched as the API server matches them."""

from __future__ import annotations

from typing import Any

from meshreg.render.labels import selector as text


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions); an empty selector matches all."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
        if not ok:
            return False
    return True


def of(obj: dict[str, Any] | None, default: dict[str, str] | None = None) -> str:
    """A workload's (or Job's) matchLabels as a label selector for listing its pods; `default` where it has none."""
    labels = (((obj or {}).get("spec") or {}).get("selector") or {}).get("matchLabels") or default or {}
    return text(labels)
