"""`meshreg verify`: an end-to-end self-test inside the cluster. Short-lived probe Jobs push and pull through the
mesh as real identities (a writer, a writer outside its prefixes, a bystander, a pod with no sidecar), a hostNetwork
probe goes through the node proxy on a node, and a pod makes the kubelet pull from localhost; each expectation is
judged from what a probe printed (or from the kubelet's events), and everything is removed again.

Phases: 1. pushes through the mesh; 2. node proxy and kubelet, pulling what phase 1 pushed; 3. deleting the
probe image where DELETE is enabled and granted."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from meshreg.cluster.enforcement import has_sidecar
from meshreg.verify import objects
from meshreg.verify.plan import BYSTANDER, KUBELET, Planner
from meshreg.verify.results import FAIL, PASS, SKIP, judge, parse, verdict
from meshreg.verify.session import Session, job_pod, signals_deferred, sweep, wait_jobs, wait_pull
from meshreg.cluster.wait import rollout
from meshreg.errors import ClusterError
from meshreg.render import labels


@dataclass
class Report:
    run: str
    namespace: str
    node: str | None = None
    verdicts: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.verdicts) and all(v.verdict in (PASS, SKIP) for v in self.verdicts)


@dataclass
class Run:
    """What one run needs while it goes: the cluster, options, planner, session and what was seen so far."""

    cluster: object
    cfg: object
    image: str
    timeout: float
    progress: object
    planner: Planner
    session: Session
    report: Report
    results: dict = field(default_factory=dict)  # expectation id -> the probe's result line
    context: dict = field(default_factory=dict)  # probe name -> what explains its failures (no sidecar, ...)
    verdicts: dict = field(default_factory=dict)  # expectation id -> Verdict
    launched: set = field(default_factory=set)


def ready_registries(cluster, cfg) -> None:
    """verify needs a deployed, ready registry: say so before creating anything."""
    for reg in cfg.registries:
        done, text = rollout(cluster.get("apps/v1", "Deployment", reg.name, namespace=cfg.namespace))
        if text == "missing":
            raise ClusterError(f"registry {reg.name} is not deployed in namespace {cfg.namespace} on "
                               f"{cluster.server}; run meshreg up first")
        if not done:
            raise ClusterError(f"registry {reg.name} is not ready ({text}); meshreg status says why")


def pick_node(cluster, cfg, wanted: str | None) -> tuple[str, tuple]:
    """(node name, (os, arch)) for the node-proxy and kubelet probes: `wanted`, or a Ready node with a node proxy."""
    nodes = {n["metadata"]["name"]: n for n in cluster.list("v1", "Node")}
    if wanted and wanted not in nodes:
        raise ClusterError(f"--node {wanted}: no such node (nodes: {', '.join(sorted(nodes)) or 'none'})")
    ready = [n for n in sorted(nodes) if any(c.get("type") == "Ready" and c.get("status") == "True"
                                             for c in (nodes[n].get("status") or {}).get("conditions") or [])]
    proxied = set()
    if cfg.node_proxy.enabled:
        selector = labels.selector(labels.node_proxy_pods(cfg))
        proxied = {p["spec"].get("nodeName") for p in cluster.list("v1", "Pod", namespace=cfg.namespace,
                                                                   label_selector=selector)}
    name = wanted or next((n for n in ready if n in proxied), ready[0] if ready else None)
    if name is None:
        raise ClusterError("no Ready node to run the node probes on")
    info = (nodes[name].get("status") or {}).get("nodeInfo") or {}
    return name, (info.get("operatingSystem") or "linux", info.get("architecture") or "amd64")


def run(*, cluster, cfg, image: str = objects.DEFAULT_IMAGE, as_identity: str | None = None,
        node: str | None = None, timeout: float = 180, progress, clock=time.monotonic, sleep=time.sleep) -> Report:
    """The whole self-test; cleans up in any case (also on KeyboardInterrupt, which it then re-raises)."""
    ready_registries(cluster, cfg)
    run_id = secrets.token_hex(3)
    namespace = f"meshreg-verify-{run_id}"
    r = Run(cluster, cfg, image, timeout, progress, Planner(cfg, run=run_id, namespace=namespace,
                                                            as_identity=as_identity),
            Session(cluster, run=run_id, namespace=namespace, clock=clock, sleep=sleep), Report(run_id, namespace))
    r.report.notes += sweep(cluster)
    r.report.node, platform = pick_node(cluster, cfg, node)
    try:
        _set_up(r)
        _phase(r, r.planner.phase_one(), platform=platform)
        _phase(r, r.planner.phase_two(_pushed(r)), platform=platform, node=r.report.node)
        _delete_images(r, platform)
    except KeyboardInterrupt as e:
        _clean(r)
        raise Interrupted(r.report) from e
    _clean(r)
    return r.report


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run; the probes were removed (the report's notes say so)."""

    def __init__(self, report: Report):
        super().__init__("interrupted")
        self.report = report


def _clean(r: Run) -> None:
    with signals_deferred():
        r.report.notes += r.session.cleanup(timeout=min(r.timeout, 60))


def _set_up(r: Run) -> None:
    expires = (datetime.now(timezone.utc) + timedelta(seconds=r.timeout * 3 + 600)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r.session.create(objects.namespace(r.cfg, r.report.namespace, run=r.report.run, expires=expires))
    r.session.create(objects.service_account(BYSTANDER, r.report.namespace, run=r.report.run))


def _phase(r: Run, expectations: list, *, platform: tuple, node: str | None = None, record: bool = True) -> list:
    """Launch the probes these expectations need, wait, read their logs, judge; the verdicts in order (also in the
    report unless `record` is False)."""
    jobs, problems = {}, {}
    for name, probe in r.planner.probes.items():
        if name in r.launched or not any(e.probe == name for e in expectations):
            continue
        r.launched.add(name)
        job = objects.job(probe, cfg=r.cfg, run=r.report.run, image=r.image, deadline=int(r.timeout) + 60,
                          node=node if probe.host_network else None, platform=platform)
        try:
            live = r.session.create(job)
            r.session.create(objects.config_map(live))
            jobs[name] = (probe.namespace, job["metadata"]["name"])
        except ClusterError as e:
            problems[name] = f"could not create the probe in namespace {probe.namespace}: {e}"
    sidecars = {n: p.sidecar for n, p in r.planner.probes.items()}
    problems.update(wait_jobs(r.session, jobs, timeout=r.timeout, progress=r.progress, sidecars=sidecars))
    for name, (ns, job_name) in jobs.items():
        problems[name] = _read(r, name, ns, job_name, problems.get(name))
    out = [_judge(r, exp, problems, node) for exp in expectations]
    for exp, v in zip(expectations, out):
        r.verdicts[exp.id] = v
    if record:
        r.report.verdicts += out
    return out


def _read(r: Run, probe_name: str, ns: str, job_name: str, problem: str | None) -> str:
    """Read one probe's log into r.results; what to say for a step with no result line."""
    probe = r.planner.probes[probe_name]
    pod = job_pod(r.cluster, ns, job_name)
    if pod is None:
        return problem or f"probe Job {ns}/{job_name} created no pod"
    if probe.sidecar and not has_sidecar(pod):
        r.context[probe_name] = f"no istio-proxy sidecar was injected into the probe pod (is namespace {ns} injected?)"
        problem = (problem + "; " if problem else "") + r.context[probe_name]
    if not probe.sidecar and has_sidecar(pod):
        return "the probe pod got an istio-proxy sidecar although it asked for none: this proves nothing"
    try:
        text = r.cluster.log(pod["metadata"]["name"], namespace=ns, container="probe", limit_bytes=1 << 20)
        if text is None:
            raise ClusterError(f"pod {ns}/{pod['metadata']['name']} has no log for container probe")
        log = parse(text)
    except ClusterError as e:
        return (problem + "; " if problem else "") + f"cannot read the probe's result from its log: {e}"
    for step in probe.steps:
        if step.id in log.results:
            r.results[step.id] = log.results[step.id]
    why = problem or "the probe printed no result for this step"
    if not log.ended:
        why += "; its log stops before the end"
    if log.sidecar_ready is False:
        why += "; its sidecar never became ready"
    return why


def _judge(r: Run, exp, problems: dict, node: str | None):
    if exp.skip:
        return verdict(exp, SKIP, exp.skip)
    if exp.blocked:
        return verdict(exp, FAIL, exp.blocked)
    if exp.probe == KUBELET:
        return _kubelet(r, exp, node)
    found = judge(exp, r.results.get(exp.id), missing=problems.get(exp.probe) or "the probe did not run")
    why = r.context.get(exp.probe)
    if found.verdict == FAIL and why and why not in found.observed:
        return verdict(exp, FAIL, f"{found.observed}; {why}")
    return found


def _kubelet(r: Run, exp, node: str | None):
    reg = next(x for x in r.cfg.registries if x.name == exp.registry)
    name = f"meshreg-verify-{r.report.run}-pull-{reg.name}"
    pod = objects.pull_pod(name=name, namespace=r.report.namespace, run=r.report.run, node=node,
                           image=f"localhost:{reg.port}/{exp.repo}@{exp.digest}", deadline=int(r.timeout) + 60)
    try:
        r.session.create(pod)
    except ClusterError as e:
        return verdict(exp, FAIL, f"could not create the pull pod: {e}")
    return wait_pull(r.session, exp, pod_name=name, timeout=r.timeout, progress=r.progress)


def _pushed(r: Run) -> dict:
    """Registry name -> the writer expectation whose push held (with the digest it pushed)."""
    out = {}
    for exp in r.planner.expectations:
        if exp.want == "pushed" and r.verdicts[exp.id].verdict == PASS and exp.registry not in out:
            exp.digest = r.results[exp.id]["digest"]
            out[exp.registry] = exp
    return out


def _delete_images(r: Run, platform: tuple) -> None:
    """Delete the probe image where DELETE is enabled and the writer may; otherwise name what stays."""
    pushed = _pushed(r)
    deletions = []
    for reg in r.cfg.registries:
        exp = pushed.get(reg.name)
        if exp is None:
            continue
        writer = next(w for w in r.cfg.writers_of(reg) if w.service_account == exp.identity)
        where = f"{reg.name}: {exp.repo}@{exp.digest}"
        if not (reg.delete_enabled and writer.delete):
            why = "deleteEnabled is false" if not reg.delete_enabled else f"{writer.service_account} may not delete"
            r.report.notes.append(f"left in registry {where} ({why}); the registry's garbage collection can remove "
                                  "it once it is deleted")
            continue
        deletions.append((r.planner.deletion(reg, exp), where))
    if deletions:
        verdicts = _phase(r, [d for d, _ in deletions], platform=platform, record=False)
        for (_, where), v in zip(deletions, verdicts):
            r.report.notes.append(f"deleted the probe image {where}" if v.verdict == PASS else
                                  f"could not delete the probe image {where}: {v.observed}")
