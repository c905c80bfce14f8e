"""Pods on the real stack for the real-stack tier: clients in the mesh (with a real injected sidecar, or
deliberately without one) that run curl and `meshreg verify`'s own probe script, the istio-proxy access log that
says which RBAC policy decided, and the kubelet's own pull from localhost:PORT."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from dataclasses import dataclass
from importlib import resources

from support.realstack import Stack

SIDECAR = "sidecar.istio.io/inject"
# Istio's default text access log (mesh config accessLogFile): "[START] "METHOD PATH PROTOCOL" CODE FLAGS DETAILS ..."
_ACCESS = re.compile(r'^\[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]+)" (?P<code>\d+) '
                     r'(?P<flags>\S+) (?P<details>\S+) ')


@dataclass(frozen=True)
class Access:
    """One line of an istio-proxy access log."""

    method: str
    path: str
    code: int
    flags: str
    details: str  # e.g. rbac_access_denied_matched_policy[ns[NS]-policy[NAME]-rule[N]], via_upstream
    line: str

    @property
    def policy(self) -> str | None:
        """The AuthorizationPolicy that denied the request (`none`: no ALLOW policy matched), or None."""
        found = re.search(r"rbac_access_denied_matched_policy\[(?:ns\[[^\]]*\]-policy\[([^\]]*)\]-rule\[\d+\]"
                          r"|(none))\]", self.details)
        return (found.group(1) or found.group(2)) if found else None


def access_log(stack: Stack, namespace: str, pod: str, *, container: str = "istio-proxy") -> list[Access]:
    text = stack.kubectl("logs", "-n", namespace, pod, "-c", container, timeout=60).stdout
    out = []
    for line in text.splitlines():
        m = _ACCESS.match(line)
        if m:
            out.append(Access(m["method"], m["path"], int(m["code"]), m["flags"], m["details"], line))
    return out


class LogWatch:
    """An istio-proxy access log from now on: lines written before it was made are not looked at."""

    def __init__(self, stack: Stack, namespace: str, pod: str):
        self.stack, self.namespace, self.pod = stack, namespace, pod
        self.mark = len(access_log(stack, namespace, pod))

    def new(self) -> list[Access]:
        return access_log(self.stack, self.namespace, self.pod)[self.mark:]

    def find(self, *, method: str | None, contains: str, timeout: float = 20) -> Access:
        """The first new line of `method` (None: any) on a path containing `contains` (Envoy writes it when the
        request ends, and flushes its log about every second)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [a for a in self.new() if method in (None, a.method) and contains in a.path]
            if found or time.monotonic() > deadline:
                assert found, f"no new {method} …{contains}… in the access log of {self.namespace}/{self.pod}"
                return found[0]
            time.sleep(1)


def probe_script() -> str:
    return resources.files("meshreg.verify").joinpath("probe.sh").read_text(encoding="utf-8")


class MeshPod:
    """A long-running client pod: the curl image, as a ServiceAccount, with Istio's injected sidecar (or, with
    `sidecar=False`, explicitly without). Requests run in it with `kubectl exec`, so many cost one pod start."""

    def __init__(self, stack: Stack, namespace: str, name: str, *, service_account: str = "default",
                 sidecar: bool = True, image: str | None = None):
        self.stack, self.namespace, self.name = stack, namespace, name
        self.service_account, self.sidecar, self.image = service_account, sidecar, image or stack.curl_image

    def start(self, *, timeout: int = 120) -> MeshPod:
        self.stack.apply({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": {SIDECAR: str(self.sidecar).lower(), "app": self.name},
                         "annotations": {"proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}'}},
            "spec": {"serviceAccountName": self.service_account, "restartPolicy": "Never",
                     "terminationGracePeriodSeconds": 1, "enableServiceLinks": False,
                     "containers": [{"name": "client", "image": self.image, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"],
                                     "securityContext": {"runAsUser": 65534, "runAsGroup": 65534}}]}})
        self.stack.wait("condition=Ready", f"pod/{self.name}", namespace=self.namespace, timeout=timeout)
        return self

    def stop(self) -> None:
        self.stack.delete("pod", self.name, namespace=self.namespace)

    def __enter__(self) -> MeshPod:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def exec(self, *argv: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return self.stack.kubectl("exec", "-i", "-n", self.namespace, self.name, "-c", "client", "--", *argv,
                                  stdin=stdin, check=False, timeout=timeout)

    def curl(self, method: str, url: str, *args: str) -> tuple[int, str]:
        """(HTTP status or 0 when there was no HTTP answer, body or curl's error), the path sent as written."""
        done = self.exec("curl", "-sS", "--path-as-is", "--max-time", "20", "-X", method, "-w", "\n%{http_code}",
                         *args, url)
        body, _, status = done.stdout.rpartition("\n")
        return (int(status), body) if status.strip("0") else (0, done.stderr.strip())

    def push_blob(self, base: str, repo: str, *, mib: int) -> str:
        """Upload a blob of `mib` MiB of random bytes to BASE/v2/REPO (monolithic PUT); its digest."""
        script = f"""set -e
head -c {mib * 1024 * 1024} /dev/urandom > /tmp/blob
digest="sha256:$(sha256sum /tmp/blob | cut -d' ' -f1)"
location=$(curl -sS -f -X POST -D - -o /dev/null "{base}/v2/{repo}/blobs/uploads/" | tr -d '\\r' |
  sed -n 's/^[Ll]ocation: //p')
case $location in http*) ;; *) location="{base}$location";; esac
case $location in *\\?*) sep='&';; *) sep='?';; esac
curl -sS -f -X PUT -H 'Content-Type: application/octet-stream' --data-binary @/tmp/blob \\
  "$location${{sep}}digest=$digest" -o /dev/null
rm /tmp/blob
echo "$digest"
"""
        done = self.exec("sh", "-c", script, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def probe(self, *steps: str, timeout: float = 180) -> dict[str, dict]:
        """Run `meshreg verify`'s own probe script with these steps (`ID VERB BASE REPO [REF]`); its result lines
        by step id. Each run pushes an image of its own (PROBE_RUN goes into its config), so no pull of it can be
        served from what a node kept of an earlier run."""
        env = {"PROBE_STEPS": "\n".join(steps), "PROBE_SIDECAR": "none", "TMPDIR": "/tmp",
               "PROBE_RUN": f"{self.name}-{secrets.token_hex(4)}"}
        done = self.exec("env", *(f"{k}={v}" for k, v in env.items()), "sh", "-s", stdin=probe_script(),
                         timeout=timeout)
        out = {}
        for line in done.stdout.splitlines():
            if line.startswith("meshreg-probe "):
                item = json.loads(line[len("meshreg-probe "):])
                if "id" in item:
                    out[item["id"]] = item
        assert {s.split()[0] for s in steps} <= set(out), f"the probe printed no result for some steps:\n" \
                                                           f"{done.stdout}\n{done.stderr}"
        return out


def kubelet_pull(stack: Stack, namespace: str, name: str, image: str, *, timeout: float = 90) -> dict:
    """Make the kubelet of the real node pull `image` (imagePullPolicy Always) in a pod that runs nothing after;
    the event that settled it (reason Pulled, or Failed)."""
    stack.apply({"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": name, "namespace": namespace, "labels": {SIDECAR: "false"}},
                 "spec": {"nodeName": stack.node, "restartPolicy": "Never", "enableServiceLinks": False,
                          "automountServiceAccountToken": False, "terminationGracePeriodSeconds": 0,
                          "containers": [{"name": "pull", "image": image, "imagePullPolicy": "Always",
                                          "command": ["/meshreg-realstack-never-runs"]}]}})
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for event in stack.events(namespace, name):
                if event["reason"] == "Pulled" or (event["reason"] == "Failed" and "pull" in event["message"].lower()):
                    return event
            time.sleep(1)
        raise AssertionError(f"no Pulled or Failed event for pod {namespace}/{name} in {timeout:.0f}s")
    finally:
        stack.delete("pod", name, namespace=namespace)


def pod_events(stack: Stack, namespace: str, pod: dict) -> list[str]:
    """`REASON: message` of a pod's events, oldest first."""
    return [f"{e['reason']}: {e['message']}" for e in stack.events(namespace, pod["metadata"]["name"])]

