"""Reads `spec.mesh` (sidecar or ambient) and refuses what Istio's ambient data plane cannot honour.

In ambient mode the registry pods have no sidecar: ztunnel enforces L4 policy and mTLS on them, and a waypoint
named WAYPOINT (a Gateway API Gateway) enforces the L7 policies. Its workload identity is the ServiceAccount Istio
creates with the Gateway's name, so that name is reserved for it.
"""

from __future__ import annotations

import re

from meshreg.config.model import Registry
from meshreg.config.reader import Reader
from meshreg.config.source import Path

MESHES = ("sidecar", "ambient")
WAYPOINT = "waypoint"  # the waypoint Gateway, and the ServiceAccount (identity) Istio deploys it with
# What the ambient render relies on, and the Istio release that introduced it.
MINIMUM_ISTIO = (1, 24)
MINIMUM_REASON = ("istio.io/ingress-use-waypoint, which sends the node proxy's traffic through the waypoint, "
                  "arrived in Istio 1.24")
# The one feature that needs a sidecar in a registry pod: a mirror reaches its upstream through its own sidecar,
# which answers (503) while the upstream is down, because distribution panics on a refused connection at start-up.
SIDECAR_ONLY_MIRROR = ("a mirror reaches its upstream through its own sidecar, which answers while the upstream is "
                       "down (distribution 2.8 panics at start-up on a refused connection); mesh: ambient has no "
                       "sidecars: serve mirrors from a meshreg instance with mesh: sidecar")
SIDECAR_ONLY_GC = ("the gc job deletes through the mesh from a pod with a sidecar, and drains that sidecar with "
                   "pilot-agent's quit endpoint; mesh: ambient has no sidecars, and a sidecar client would skip the "
                   "waypoint: run gc and retention from a meshreg instance with mesh: sidecar")
# Revision names that spell an Istio version, as Istio's upgrade guides name them: 1-24, 1-24-1, istio-1-24-1.
_VERSIONED_REVISION = re.compile(r"(?:istio-)?1-(\d+)(?:-\d+)*")


def read_mesh(r: Reader, value: object, path: Path) -> str:
    """`sidecar` (the default) or `ambient`."""
    return r.string(value, path, lambda v: None if v in MESHES else
                    f"{v!r} is not a mesh mode (expected one of: {', '.join(MESHES)})")


def check_ambient(r: Reader, *, registries: tuple[Registry, ...], several: bool) -> None:
    """A problem for each setting of the registries that ambient mode cannot honour (config.spec also checks the
    revision with check_revision, and refuses the waypoint's identity as a writer or publisher)."""
    for i, reg in enumerate(registries):
        _check_sidecar_free(r, reg, ("spec", "registries", i) if several else ("spec", "registry"), several=several)


def check_revision(r: Reader, revision: object) -> None:
    """A revision named after an Istio version older than MINIMUM_ISTIO."""
    match = _VERSIONED_REVISION.fullmatch(revision) if isinstance(revision, str) else None
    if match and (1, int(match.group(1))) < MINIMUM_ISTIO:
        r.record(("spec", "istioRevision"), f"{revision!r} names Istio 1.{match.group(1)}, but mesh: ambient needs "
                                          f"Istio {'.'.join(map(str, MINIMUM_ISTIO))} or newer ({MINIMUM_REASON})")


def _check_sidecar_free(r: Reader, reg: Registry, base: Path, *, several: bool) -> None:
    """One registry (at `base`): not named like the waypoint, and nothing that needs a sidecar in its pods."""
    if several and reg.name == WAYPOINT:  # only spec.registries names registries
        r.record(base + ("name",), f"{WAYPOINT!r} is the waypoint's name in ambient mode (its Service and "
                                 "ServiceAccount): name the registry otherwise")
    if reg.role == "mirror":  # only in spec.registries: the single registry is an images registry
        r.record(base + ("role",), SIDECAR_ONLY_MIRROR)
    if reg.gc or reg.retention:
        r.record(base + ("gc" if reg.gc else "retention",), SIDECAR_ONLY_GC)
