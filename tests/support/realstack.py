"""The real stack beside this repository (../shared/lab-kube with real-node.sh, ../shared/lab-istio mesh.sh): a real
API server, a real kubelet node, a real istiod with its injector and sidecars. Found, never started, by the tests:
starting it changes the host (iptables, a bridge, /etc/hosts) and takes minutes, so it is the developer's step."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from support.paths import SHARED

TMP = Path(tempfile.gettempdir())
HOW = ("start the real stack first, as ../shared/lab-istio/README.md says under "
       "'A real sidecar mesh on the real node': "
       "LAB_APISERVER_IP=192.0.2.2 $LAB_KUBE/start.sh --fresh, the Istio CRDs, LAB_NODE_DNS=192.0.2.2 "
       "../shared/lab-kube/real-node.sh start, ../shared/lab-istio/mesh.sh start")


@dataclass(frozen=True)
class Stack:
    """Where the running real stack is: its kubeconfig, its one real node, and the images its node holds."""

    kubeconfig: Path
    node: str
    node_ip: str
    lab_kube: Path
    lab_node: Path
    lab_istio: Path
    curl_image: str = "lab.local/meshreg/curl:lab"  # busybox + curl, for meshreg verify --image
    registry_image: str = "docker.io/library/registry:2.8.3"  # Debian's distribution 2.8.2, preloaded on the node

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for kubectl and meshreg against the stack."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "LAB_KUBE": str(self.lab_kube),
                "LAB_NODE": str(self.lab_node), "LAB_ISTIO": str(self.lab_istio), **extra}

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["kubectl", *args], input=stdin, env=self.env(), capture_output=True, text=True,
                              timeout=120, check=check)


def find() -> tuple[Stack | None, str]:
    """The running stack, or None and why not (with how to start it)."""
    lab_kube = Path(os.environ.get("LAB_KUBE", TMP / "lab-kube"))
    lab_node = Path(os.environ.get("LAB_NODE", TMP / "lab-node"))
    lab_istio = Path(os.environ.get("LAB_ISTIO", TMP / "lab-istio"))
    node = os.environ.get("LAB_NODE_NAME", "lab-real-1")
    kubeconfig = lab_kube / "kubeconfig"
    if not SHARED.is_dir():
        return None, f"the labs live in {SHARED}, which is absent"
    if not kubeconfig.exists():
        return None, f"no API-server lab at {lab_kube} (build it: ../shared/lab-kube/README.md); then {HOW}"
    stack = Stack(kubeconfig, node, "", lab_kube, lab_node, lab_istio)
    try:
        found = json.loads(stack.kubectl("get", "node", node, "-o", "json").stdout)
        istiod = stack.kubectl("-n", "istio-system", "get", "deployment", "istiod", "-o", "json", check=False)
    except (subprocess.SubprocessError, OSError, ValueError) as e:
        return None, f"the lab at {lab_kube} does not answer with node {node} ({e}); {HOW}"
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in found["status"].get("conditions", []))
    if not ready:
        return None, f"node {node} is not Ready; {HOW}"
    if istiod.returncode != 0 or not json.loads(istiod.stdout).get("status", {}).get("readyReplicas"):
        return None, f"no ready istiod in istio-system (../shared/lab-istio/mesh.sh start); {HOW}"
    ip = next(a["address"] for a in found["status"]["addresses"] if a["type"] == "InternalIP")
    return Stack(kubeconfig, node, ip, lab_kube, lab_node, lab_istio), ""
