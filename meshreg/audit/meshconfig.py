"""Does a mesh config define the audit provider as meshreg writes it? What `doctor`, `up` and `audit` say about it.

Istio looks providers up by name, ignoring case (pilot/pkg/model/telemetry.go, fetchProvider); a Telemetry naming a
provider the mesh config lacks logs nothing through it (istiod skips it).
"""

from __future__ import annotations

from typing import Any

from meshreg.audit.format import FIELDS, STDOUT

FIX = ("add the provider to the mesh config's extensionProviders (`meshreg audit --mesh-config` prints it; "
       "istioctl: spec.meshConfig, Helm istiod chart: meshConfig, or ConfigMap istio key mesh; istiod picks it up "
       "without a restart; docs/audit.md)")


def find(mesh: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The extension provider called `name` (any case), as Istio finds it."""
    for entry in mesh.get("extensionProviders") or []:
        if isinstance(entry, dict) and str(entry.get("name", "")).lower() == name.lower():
            return entry
    return None


def _differences(labels: dict[str, Any]) -> list[str]:
    """How `labels` differ from meshreg's format, one phrase per kind of difference."""
    found = {"missing keys": [k for k in FIELDS if k not in labels],
             "other values for": [k for k in FIELDS if k in labels and labels[k] != FIELDS[k]],
             "extra keys": [k for k in labels if k not in FIELDS]}
    return [f"{what}: {', '.join(sorted(keys))}" for what, keys in found.items() if keys]


def _format_problems(labels: object) -> list[str]:
    if not isinstance(labels, dict):
        return ["it has no logFormat.labels (a JSON format)"]
    differences = _differences(labels)
    return [f"its format is not meshreg's v1 ({'; '.join(differences)})"] if differences else []


def problems(mesh: dict[str, Any] | None, name: str) -> list[str]:
    """Why the mesh config does not write meshreg's audit records through `name`; empty when it does."""
    if mesh is None:
        return ["the mesh config was not found"]
    entry = find(mesh, name)
    if entry is None:
        return [f"the mesh config has no extension provider {name!r}, so the audit Telemetry logs nothing"]
    log = entry.get("envoyFileAccessLog")
    if not isinstance(log, dict):
        kinds = ", ".join(sorted(k for k in entry if k != "name")) or "nothing"
        return [f"extension provider {name!r} is {kinds}, not envoyFileAccessLog"]
    out = []
    path = log.get("path") or STDOUT
    if path != STDOUT:
        out.append(f"it writes to {path}, not {STDOUT}: the proxies' logs (and meshreg audit) will not have the "
                   "records")
    return out + _format_problems((log.get("logFormat") or {}).get("labels"))
