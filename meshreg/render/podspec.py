"""What every pod template meshreg renders takes from the config besides its own settings: where it may run
(nodeSelector, tolerations, affinity) and the Secrets that pull its images from a private mirror."""

from __future__ import annotations

from typing import Any

from meshreg.config import Config
from meshreg.config.model import Scheduling


def pull_secrets(cfg: Config) -> dict[str, Any]:
    """`imagePullSecrets` for a pod spec (they must exist in the pod's namespace), or nothing."""
    return {"imagePullSecrets": [{"name": n} for n in cfg.image_pull_secrets]} if cfg.image_pull_secrets else {}


def placement(scheduling: Scheduling, *, own: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scheduling fields of a pod spec: the config's, with meshreg's own affinity terms (`own`) first."""
    out = scheduling.pod_spec()
    affinity = merged(own or {}, scheduling.affinity or {})
    if affinity:
        out["affinity"] = affinity
    return out


def merged(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Two affinities as one: mappings merged key by key, term lists joined (ours first)."""
    out = dict(ours)
    for key, value in theirs.items():
        if key not in out:
            out[key] = value
        elif isinstance(value, dict):
            out[key] = merged(out[key], value)
        elif isinstance(value, list):
            out[key] = [*out[key], *value]
        else:
            out[key] = value
    return out
