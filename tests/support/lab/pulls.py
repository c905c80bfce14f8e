"""Proof that a pull reached the registry through the node proxy: fresh images, the registry's log, Envoy's counters."""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import envoy, images
from .clients import skopeo_copy


def fresh(lab, directory: Path, repo: str, *, writer: str) -> images.Image:
    """A new image (random content) pushed to repo:v1 by `writer` over mTLS: nothing anywhere has its blobs yet."""
    image = images.build(directory / repo.replace("/", "_"), layer_sizes=(1024, 4096))
    result = skopeo_copy(image.ref, f"docker://{lab.sidecar}/{repo}:v1", dest_ident=lab.identity(writer))
    assert result.returncode == 0, result.stderr
    return image


def blob_requests(image: images.Image) -> set[str]:
    """The blob GETs every pull of `image` makes: its config and each layer."""
    manifest = json.loads(image.manifest)
    return {f"GET blobs/{d['digest']}" for d in [manifest["config"], *manifest["layers"]]}


class Watch:
    """What the registry and the node proxy served from the moment this is made."""

    def __init__(self, lab):
        self.lab = lab
        self.log = lab.root / "registry.log"
        self.start = len(self.log.read_text())
        self.answered = self._answered()

    def _answered(self) -> int:
        return envoy.counter(self.lab.admin, "http.node-proxy.downstream_rq_2xx")

    def node_proxy_answers(self) -> int:
        """Requests the node-proxy listener has answered with 2xx since, from Envoy's admin counters."""
        return self._answered() - self.answered

    def served(self, repo: str, *, agent: str) -> set[str]:
        """`METHOD path` under /v2/<repo>/ for each request the registry answered 200 to a client whose user agent
        starts with `agent`."""
        out = set()
        pattern = re.compile(rf'http\.request\.method=(\w+) .*http\.request\.uri="?/v2/{re.escape(repo)}/([^" ]+)')
        for line in self.log.read_text()[self.start:].splitlines():
            m = pattern.search(line)
            if m and re.search(rf'http\.request\.useragent="?{re.escape(agent)}', line) \
                    and "http.response.status=200" in line:
                out.add(f"{m.group(1)} {m.group(2)}")
        return out
