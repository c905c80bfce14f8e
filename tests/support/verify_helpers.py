"""A stand-in for what runs verify's probes in a real cluster: the Job controller (one pod per Job, owned by it),
Istio's injector (an istio-proxy container where the pod asks for one), the kubelet (the pod runs at once and logs
what the mesh let each step do, in the probe script's line format) and the kubelet's image pull (events)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from meshreg.cluster import apply as applying
from meshreg.config import from_text
from meshreg.render import render
from meshreg.render.labels import node_proxy_pods
from support.fakes import INJECTOR, FakeCluster, ready_controller

CONFIG = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: meshreg}
spec:
  registry: {deleteEnabled: true}
  writers:
    - serviceAccount: builds/kaniko
      delete: true
    - serviceAccount: team-a/builder
      repositories: [team-a/]
"""
DIGEST = "sha256:" + "ab" * 32


def line(**item) -> str:
    return "meshreg-probe " + json.dumps(item, separators=(",", ":"))


def mesh_decides(cfg):
    """What a healthy mesh does with each step: writers write inside their prefixes, everyone else gets 403,
    plain text gets a reset, the node proxy only reads."""
    writers = {w.service_account: w for reg in cfg.registries for w in cfg.writers_of(reg)}

    def decide(step: dict, pod: dict) -> dict:
        sidecar = any(c["name"] == "istio-proxy" for c in pod["spec"]["containers"])
        node = step["base"].startswith("http://localhost")
        if not sidecar and not node:
            return {"result": "no-response", "step": "layer", "status": 0, "curl": 56,
                    "error": "curl: (56) Recv failure: Connection reset by peer", "body": ""}
        who = f"{pod['metadata']['namespace']}/{pod['spec']['serviceAccountName']}"
        writer = writers.get(who)
        if step["verb"] == "push":
            inside = writer and not node and (not writer.scoped or any(step["repo"].startswith(p)
                                                                       for p in writer.repositories))
            if inside:
                return {"result": "ok", "status": 200, "digest": DIGEST, "served": DIGEST}
            return {"result": "http-error", "step": "layer", "status": 403, "curl": 0, "error": "",
                    "body": "RBAC: access denied"}
        if step["verb"] == "delete":
            return {"result": "ok", "status": 202, "served": ""}
        return {"result": "ok", "status": 200, "served": step.get("ref") or ""}
    return decide


@dataclass
class ProbeRuntime:
    """on_create hook for the fake cluster. Switches: finish (Jobs complete), logs (the kubelet serves logs),
    inject (namespace -> whether the injector adds a sidecar; default: when the pod asks), end (the log's last
    line), drop (verbs with no result line), pulled (the kubelet's events for a pull pod)."""

    decide: object
    finish: bool = True
    logs: bool = True
    inject: dict = field(default_factory=dict)
    end: bool = True
    drop: set = field(default_factory=set)  # verbs whose result line never makes it into the log
    pulled: list = field(default_factory=lambda: [("Normal", "Pulled", "Successfully pulled image in 0.2s")])
    pods: list = field(default_factory=list)  # the probe Jobs' pods
    jobs: list = field(default_factory=list)  # the probe Jobs as created
    pull_pods: list = field(default_factory=list)  # the kubelet-pull pods as created
    scheduled_on: str = "node-a"

    def __call__(self, cluster, obj):
        if obj["kind"] == "Job":
            self.jobs.append(json.loads(json.dumps(obj)))
            self._job(cluster, obj)
        elif obj["kind"] == "Pod" and obj["spec"]["containers"][0]["name"] == "pull":
            self.pull_pods.append(obj)
            for kind, reason, message in self.pulled:
                cluster.put({"apiVersion": "v1", "kind": "Event", "metadata": {
                    "name": f"{obj['metadata']['name']}.{reason}", "namespace": obj["metadata"]["namespace"]},
                    "involvedObject": {"kind": "Pod", "name": obj["metadata"]["name"]}, "type": kind,
                    "reason": reason, "message": message, "source": {"host": obj["spec"]["nodeName"]}})

    def _job(self, cluster, job):
        meta, template = job["metadata"], job["spec"]["template"]
        ns = meta["namespace"]
        spec = json.loads(json.dumps(template["spec"]))
        spec.setdefault("nodeName", self.scheduled_on)  # what the scheduler would do with a pod not bound to a node
        asks = template["metadata"]["labels"].get("sidecar.istio.io/inject") == "true"
        if self.inject.get(ns, asks):
            spec["containers"].append({"name": "istio-proxy", "image": "istio/proxyv2"})
        uid = {"controller-uid": meta["uid"]}
        job["spec"]["selector"] = {"matchLabels": uid}
        pod = cluster.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"{meta['name']}-x1", "namespace": ns, "labels": {**template["metadata"]["labels"], **uid},
            "ownerReferences": [{"kind": "Job", "name": meta["name"], "uid": meta["uid"]}], "uid": f"p-{meta['uid']}"},
            "spec": spec, "status": {"phase": "Succeeded" if self.finish else "Running"}})
        live = cluster.objects[("batch/v1", "Job", ns, meta["name"])]
        live["spec"]["selector"] = job["spec"]["selector"]
        if self.finish:
            live["status"] = {"succeeded": 1}
        cluster.changed(("batch/v1", "Job", ns, meta["name"]))
        if self.logs:
            cluster.pod_logs[(ns, pod["metadata"]["name"])] = self._log(pod)
        self.pods.append(pod)

    def _log(self, pod) -> str:
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
        out = [line(event="sidecar", ready=True)] if env["PROBE_SIDECAR"] == "wait" else []
        out.append(line(event="start"))
        for text in env["PROBE_STEPS"].splitlines():
            id_, verb, base, repo, *ref = text.split()
            step = {"id": id_, "verb": verb, "base": base, "repo": repo, "ref": ref[0] if ref else ""}
            if verb in self.drop:
                continue
            out.append(line(id=id_, verb=verb, **self.decide(step, pod)))
        if self.end:
            out.append(line(event="end"))
        return "\n".join(out) + "\n"


def deployed_cluster(text: str = CONFIG, **runtime):
    """A fake cluster with Istio, meshreg deployed and ready, the writers' namespaces and accounts, two nodes
    (one running the node proxy), and a ProbeRuntime playing the rest."""
    cfg = from_text(text, name="meshreg.yaml")
    fake = FakeCluster()
    fake.put(INJECTOR)
    fake.on_apply.append(ready_controller)
    applying.apply(manifests=render(cfg), cluster=fake)
    for identity in {w.service_account for r in cfg.registries for w in cfg.writers_of(r)}:
        ns, sa = identity.split("/")
        fake.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {
            "istio-injection": "enabled"}}})
        fake.put({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}})
    for name in ("node-a", "node-b"):
        fake.put({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"operatingSystem": "linux", "architecture": "arm64"}}})
    fake.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "node-proxy-b", "namespace": "meshreg",
                                                              "labels": node_proxy_pods(cfg)},
              "spec": {"nodeName": "node-b", "containers": [{"name": "istio-proxy"}]},
              "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    probes = ProbeRuntime(mesh_decides(cfg), **runtime)
    fake.on_create.append(probes)
    return fake, cfg, probes


class Clock:
    """A clock that moves only when the code sleeps; `interrupt_after` raises KeyboardInterrupt on that sleep."""

    def __init__(self, interrupt_after: int | None = None):
        self.now, self.sleeps, self.interrupt_after = 0.0, 0, interrupt_after

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.interrupt_after is not None and self.sleeps >= self.interrupt_after:
            raise KeyboardInterrupt
        self.now += seconds


def leftovers(fake) -> list:
    """Every object verify created that still exists."""
    return [k for k, o in fake.objects.items()
            if (o["metadata"].get("labels") or {}).get("app.kubernetes.io/managed-by") == "meshreg-verify"
            or (k[1] == "Pod" and "meshreg-verify" in k[3])]
