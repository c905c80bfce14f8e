"""Whether a node's container runtime pulls `localhost:PORT` over plain HTTP unaided, judged from its version.

Pure: the input is a node's `status.nodeInfo.containerRuntimeVersion` (`containerd://1.7.11-k3s2`, `cri-o://1.28.1`,
`docker://24.0.7`); the answer says whether meshreg's runtime config (`spec.nodeProxy.runtimeConfig`) is needed there,
which of its settings applies, and why. The facts behind each answer are in docs/node-runtimes.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCS = "docs/node-runtimes.md"
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Judgement:
    """`needed`: True (set it up), False (works unaided) or None (meshreg cannot tell)."""

    runtime: str  # containerd, cri-o, docker, or what the node reported
    version: str
    needed: bool | None
    setting: str | None  # the runtimeConfig key that writes the files: containerd, crio, or None
    reason: str
    k3s: bool = False  # a k3s/RKE2 build: its containerd config is generated from registries.yaml


def parse(runtime_version: str) -> tuple[str, str]:
    """`containerd://1.7.11-k3s2` -> ("containerd", "1.7.11-k3s2")."""
    runtime, sep, version = runtime_version.strip().partition("://")
    return (runtime.lower(), version) if sep else ("", runtime_version.strip())


def _numbers(version: str) -> tuple[int, int, int] | None:
    m = _VERSION.match(version)
    return (int(m[1]), int(m[2]), int(m[3] or 0)) if m else None


def judge(runtime_version: str) -> Judgement:
    """Does this runtime need meshreg's runtime config to pull localhost:PORT from the node proxy, and why."""
    runtime, version = parse(runtime_version)
    numbers = _numbers(version)
    if runtime == "containerd" and numbers:
        return _containerd(version, numbers)
    if runtime == "cri-o":
        return Judgement(runtime, version, True, "crio",
                         "CRI-O (containers/image) uses TLS for every registry that registries.conf does not mark "
                         "insecure, localhost included; the runtime config adds a registries.conf.d drop-in")
    if runtime == "docker":
        return Judgement(runtime, version, False, None,
                         "dockerd treats 127.0.0.0/8 (and so localhost) as an insecure registry by default and "
                         "falls back to plain HTTP")
    what = f"runtime {runtime!r}" if runtime else f"version string {runtime_version!r}"
    return Judgement(runtime or "unknown", version, None, None, f"meshreg does not know {what}; see {DOCS}")


def _containerd(version: str, v: tuple[int, int, int]) -> Judgement:
    k3s = "-k3s" in version
    if v < (1, 6, 9):
        needed, why = True, ("with config_path set (AKS, EKS, k3s, RKE2 and others set it) containerd before 1.6.9 "
                             "uses HTTPS for localhost too (containerd issue 7392, fixed by PR 7438 in 1.6.9)")
    elif (1, 6, 25) <= v < (1, 6, 32) or (1, 7, 7) <= v < (1, 7, 16):
        needed, why = True, ("with config_path set, this containerd tries HTTPS first and falls back to HTTP only on "
                             "some failures; pulls from localhost were reported failing (containerd issue 10014; "
                             "fallback reworked in 1.6.32/1.7.16, PR 10109)")
    elif v < (1, 6, 25) or (1, 7, 0) <= v < (1, 7, 7):
        needed, why = False, "containerd 1.6.9-1.6.24 and 1.7.0-1.7.6 use plain HTTP for localhost (PR 7438)"
    else:
        needed, why = False, ("with config_path set, containerd 1.6.32+, 1.7.16+ and 2.x try HTTPS first and fall "
                              "back to plain HTTP when the node proxy answers the TLS handshake with an HTTP error "
                              "(it does)")
    if k3s and needed:
        why += ("; on k3s/RKE2 list localhost:PORT with an http:// endpoint in /etc/rancher/{k3s,rke2}/"
                "registries.yaml: k3s deletes its generated certs.d directory at every start")
    return Judgement("containerd", version, needed, "containerd", why, k3s=k3s)
