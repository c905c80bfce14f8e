"""`meshreg connect`'s banner: where to push, with docker, Skaffold and Tilt, and where pod specs pull from."""

from __future__ import annotations

from meshreg.operations.connect import Forwarding

__all__ = ["text"]


def text(forwarding: Forwarding) -> str:
    """The lines printed once the port forwards: the published names, with the local address in place of the
    default one where --port moved it."""
    f, loop = forwarding, forwarding.loop
    default = f"localhost:{loop.port}"
    push = loop.push if f.local == default else f.local + loop.push[len(default):]
    tilt = ("nothing to set: it reads kube-public/local-registry-hosting" if loop.published and push == loop.push
            else f"default_registry('{push}', host_from_cluster='{f.pull}')")
    skaffold = f"skaffold run --default-repo={push}"
    if not loop.same_name and push == loop.push:
        skaffold += f"   (pods then pull {push}/...: only on a node that reaches this meshreg connect)"
    return "\n".join([
        f"forwarding {f.local} -> pod {f.namespace}/{f.pod}:{f.port} (registry {f.registry}: pushes to {push}/...)",
        f"  docker:   docker push {push}/IMAGE:TAG",
        f"  skaffold: {skaffold}",
        f"  tilt:     {tilt}",
        f"  pull in pod specs: {f.pull}/..." + ("" if f.node_proxy else " (no node proxy)"),
        "Ctrl-C to stop.",
    ])
