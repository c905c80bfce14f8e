"""Typed reads of the fields of Kubernetes objects that policy evaluation looks at, with Kubernetes' defaults."""

from __future__ import annotations

from meshreg.objects import Labels, Object


def spec(obj: Object) -> Object:
    """The object's `spec` ({} when it has none)."""
    value: Object = obj.get("spec") or {}
    return value


def namespace(obj: Object) -> str:
    """The object's namespace ("default" when its metadata names none)."""
    value: str = obj["metadata"].get("namespace", "default")
    return value


def labels(obj: Object | None) -> Labels:
    """The object's labels ({} when it has none, or for no object)."""
    value: Labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    return value


def match_labels(policy_spec: Object) -> Labels:
    """A policy's `selector.matchLabels` ({}: no selector, so every workload of its namespace)."""
    value: Labels = (policy_spec.get("selector") or {}).get("matchLabels") or {}
    return value


def targets(policy_spec: Object) -> bool:
    """Whether a policy names what it applies to with targetRef(s) (a Gateway, a Service) instead of a selector."""
    return bool(policy_spec.get("targetRef") or policy_spec.get("targetRefs"))
