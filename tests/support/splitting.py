"""Renders with the registry's policies split into objects no larger than a limit, down to the finest split that
still renders: how the invariants and the Envoy test exercise every splitting path."""

from __future__ import annotations

import functools
from unittest import mock

from meshreg import render as rendering
from meshreg.errors import ConfigError
from meshreg.render import policies


def rendered(cfg, max_bytes):
    if max_bytes is None:
        return rendering.render(cfg)
    if max_bytes == "finest":
        return finest(cfg)
    split = functools.partial(policies.registry_policies, max_bytes=max_bytes)
    with mock.patch.object(policies, "registry_policies", split):
        return rendering.render(cfg)


_FINEST: dict = {}


def finest(cfg):
    """The render with the smallest per-object limit that still renders (each rule alone must fit)."""
    key = repr(cfg)
    if key not in _FINEST:
        for limit in range(500, 4000, 50):
            try:
                _FINEST[key] = rendered(cfg, limit)
                break
            except ConfigError:
                continue
    return _FINEST[key]
