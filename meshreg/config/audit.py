"""Reads `spec.audit`: whether meshreg renders the Telemetry objects that log every write and refusal, the mesh
config's extension provider that writes those records, and the access-log providers kept beside it."""

from __future__ import annotations

import re

from meshreg.config.model import Audit
from meshreg.config.reader import Reader
from meshreg.config.source import Path

_DEFAULT = Audit()
# Istio only asks for a non-empty, unique name; this keeps to names that read the same in YAML, CEL and messages.
_PROVIDER = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")


def check_provider(value: str) -> str | None:
    """None if `value` can name an extension provider of the mesh config, else what is wrong."""
    if _PROVIDER.fullmatch(value):
        return None
    return (f"{value!r} is not a provider name (letters, digits, '.', '_' and '-', starting and ending with a letter "
            "or digit)")


def read_audit(r: Reader, data: object, path: Path) -> Audit:
    """`spec.audit`; absent: audit records on, through the provider `meshreg-audit`, keeping Istio's `envoy` log."""
    spec = r.mapping(data, path, {"enabled": _DEFAULT.enabled, "provider": _DEFAULT.provider,
                                  "keepProviders": list(_DEFAULT.keep_providers)})
    enabled = r.attempt(lambda: r.boolean(spec["enabled"], path + ("enabled",)))
    provider = r.attempt(lambda: r.string(spec["provider"], path + ("provider",), check_provider))
    keep = r.attempt(lambda: r.strings(spec["keepProviders"], path + ("keepProviders",), check_provider))
    for i, name in enumerate(keep.value):
        if name.lower() == provider.value.lower():
            r.fail(path + ("keepProviders", i), f"{name!r} is the audit provider itself (spec.audit.provider)")
    return Audit(enabled=enabled.value, provider=provider.value, keep_providers=tuple(keep.value))
