"""Istio's string match, as every AuthorizationPolicy field and claim condition applies it."""

from __future__ import annotations


def istio_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Exact, `prefix*`, `*suffix`, or `*` (any non-empty value)."""
    pattern, value = (str(pattern).lower(), value.lower()) if ignore_case else (str(pattern), value)
    if pattern == "*":
        return value != ""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern
