"""`meshreg connect`'s banner: where to push, with docker, skaffold and tilt, and where pod specs pull from."""

from __future__ import annotations

from meshreg.operations.connect import Forwarding

__all__ = ["text"]


def text(forwarding: Forwarding) -> str:
    """The lines printed once the port forwards."""
    f = forwarding
    scope = f.repositories
    repo = f.local if scope == ("*",) else f"{f.local}/{scope[0].rstrip('/')}"
    shown = "every repository" if scope == ("*",) else ", ".join(scope)
    return "\n".join([
        f"forwarding {f.local} -> pod {f.namespace}/{f.pod}:{f.port} (registry {f.registry}: pushes to {shown})",
        f"  docker:   docker push {repo}/IMAGE:TAG",
        f"  skaffold: skaffold dev --default-repo={repo}   (or: skaffold config set default-repo {repo})",
        f"  tilt:     default_registry('{repo}')",
        f"  pull in pod specs: {f.pull}/..." if f.node_proxy else f"  pull in pod specs: {f.pull}/... (no node proxy)",
        "Ctrl-C to stop.",
    ])
