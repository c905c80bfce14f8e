"""One verify run, phase by phase: check the registries are ready, pick the node, create the temporary namespace, run
the probes of each phase and judge what they report, delete the probe image, and remove everything again."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from meshreg.cluster.api import ClusterClient, Object
from meshreg.cluster.enforcement import has_sidecar
from meshreg.cluster.wait import Progress, rollout
from meshreg.config import Config, Registry
from meshreg.errors import ClusterError
from meshreg.verify import objects, pullsecrets
from meshreg.verify.nodes import pick_node
from meshreg.verify.objects import Platform
from meshreg.verify.placement import ANYWHERE, Placement
from meshreg.verify.plan import BYSTANDER, KUBELET, Expectation, Planner
from meshreg.verify.report import VerifyReport
from meshreg.verify.results import FAIL, PASS, SKIP, Log, Verdict, judge, parse, verdict
from meshreg.verify.session import Session, job_pod, sweep, wait_jobs, wait_pull
from meshreg.verify.signals import signals_deferred

Jobs = dict[str, tuple[str, str]]  # probe name -> (namespace, Job name)


@dataclass
class Run:
    """What one run needs while it goes: the cluster, options, planner, session and what was seen so far."""

    cluster: ClusterClient
    cfg: Config
    image: str
    timeout: float
    progress: Progress
    planner: Planner
    session: Session
    report: VerifyReport
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # expectation id -> the probe's result line
    context: dict[str, str] = field(default_factory=dict)  # probe name -> what explains its failures (no sidecar)
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # expectation id -> Verdict
    launched: set[str] = field(default_factory=set)
    placement: Placement = ANYWHERE
    nodes: dict[str, str] = field(default_factory=dict)  # probe name -> the node its pod ran on


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run; the probes were removed (the report's notes say so)."""

    def __init__(self, report: VerifyReport):
        super().__init__("interrupted")
        self.report = report


def ready_registries(cluster: ClusterClient, cfg: Config) -> None:
    """verify needs a deployed, ready registry: say so before creating anything."""
    for reg in cfg.registries:
        done, text = rollout(cluster.get("apps/v1", "Deployment", reg.name, namespace=cfg.namespace))
        if text == "missing":
            raise ClusterError(f"registry {reg.name} is not deployed in namespace {cfg.namespace} on "
                               f"{cluster.server}; run meshreg up first")
        if not done:
            raise ClusterError(f"registry {reg.name} is not ready ({text}); meshreg status says why")


def run(*, cluster: ClusterClient, cfg: Config, image: str = objects.DEFAULT_IMAGE, as_identity: str | None = None,
        node: str | None = None, timeout: float = 180, progress: Progress, placement: Placement = ANYWHERE,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] | None = None) -> VerifyReport:
    """The whole self-test; cleans up in any case (also on KeyboardInterrupt: it then raises Interrupted, with the
    report marked interrupted). Probes tolerate and select only what `placement` says."""
    ready_registries(cluster, cfg)
    run_id = secrets.token_hex(3)
    namespace = f"meshreg-verify-{run_id}"
    report = VerifyReport(cluster.server, run_id, namespace, tuple(reg.name for reg in cfg.registries))
    r = Run(cluster, cfg, image, timeout, progress, Planner(cfg, run=run_id, namespace=namespace,
                                                            as_identity=as_identity),
            Session(cluster, run=run_id, namespace=namespace, clock=clock, sleep=sleep), report,
            placement=placement)
    r.report.notes += sweep(cluster)
    r.report.node, platform = pick_node(cluster, cfg, wanted=node, placement=placement)
    try:
        _set_up(r)
        first = r.planner.phase_one()
        r.report.notes += pullsecrets.missing(cluster, cfg, namespaces={
            p.namespace for p in r.planner.probes.values()} - {namespace})
        _phase(r, first, platform=platform)
        _phase(r, r.planner.phase_two(_pushed(r)), platform=platform, node=r.report.node)
        _delete_images(r, platform)
    except KeyboardInterrupt as e:
        _clean(r)
        r.report.interrupted = True
        raise Interrupted(r.report) from e
    _clean(r)
    return r.report


def _clean(r: Run) -> None:
    with signals_deferred():
        r.report.notes += r.session.cleanup(timeout=min(r.timeout, 60))


def _set_up(r: Run) -> None:
    expires = (datetime.now(timezone.utc) + timedelta(seconds=r.timeout * 3 + 600)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r.session.create(objects.namespace(r.cfg, r.report.namespace, run=r.report.run, expires=expires))
    r.session.create(objects.service_account(BYSTANDER, r.report.namespace, run=r.report.run))
    r.report.notes += pullsecrets.copy_into(r.session, r.cfg, namespace=r.report.namespace)


def _phase(r: Run, expectations: list[Expectation], *, platform: Platform, node: str | None = None,
           record: bool = True) -> list[Verdict]:
    """Launch the probes these expectations need, wait, read their logs, judge; the verdicts in order (also in the
    report unless `record` is False)."""
    jobs, problems = _launch(r, expectations, platform=platform, node=node)
    sidecars = {n: p.sidecar for n, p in r.planner.probes.items()}
    problems.update(wait_jobs(r.session, jobs, timeout=r.timeout, progress=r.progress, sidecars=sidecars))
    for name, (ns, job_name) in jobs.items():
        problems[name] = _read(r, name, where=(ns, job_name), problem=problems.get(name))
    out = [_judge(r, exp, problems, node) for exp in expectations]
    for exp, v in zip(expectations, out, strict=True):
        r.verdicts[exp.id] = v
    if record:
        r.report.verdicts += out
    return out


def _launch(r: Run, expectations: list[Expectation], *, platform: Platform,
            node: str | None) -> tuple[Jobs, dict[str, str]]:
    """Create the probe Jobs these expectations need that no earlier phase launched: (the Jobs created, probe name ->
    why it could not be created)."""
    jobs: Jobs = {}
    problems: dict[str, str] = {}
    for name, probe in r.planner.probes.items():
        if name in r.launched or not any(e.probe == name for e in expectations):
            continue
        r.launched.add(name)
        job = objects.job(probe, cfg=r.cfg, run=r.report.run, image=r.image, deadline=int(r.timeout) + 60,
                          node=node if probe.host_network else None, platform=platform, placement=r.placement)
        try:
            live = r.session.create(job)
            r.session.create(objects.config_map(live))
            jobs[name] = (probe.namespace, job["metadata"]["name"])
        except ClusterError as e:
            problems[name] = f"could not create the probe in namespace {probe.namespace}: {e}"
    return jobs, problems


def _read(r: Run, probe_name: str, *, where: tuple[str, str], problem: str | None) -> str:
    """Read one probe's log (its Job `where`: namespace, name) into r.results; what to say for a step with no result
    line."""
    ns, job_name = where
    probe = r.planner.probes[probe_name]
    pod = job_pod(r.cluster, ns, job_name)
    if pod is None:
        return problem or f"probe Job {ns}/{job_name} created no pod"
    _ran_on(r, probe_name, pod)
    if probe.sidecar and not has_sidecar(pod):
        r.context[probe_name] = f"no istio-proxy sidecar was injected into the probe pod (is namespace {ns} injected?)"
        problem = _also(problem, r.context[probe_name])
    if not probe.sidecar and has_sidecar(pod):
        return "the probe pod got an istio-proxy sidecar although it asked for none: this proves nothing"
    try:
        log = _log(r.cluster, pod, namespace=ns)
    except ClusterError as e:
        return _also(problem, f"cannot read the probe's result from its log: {e}")
    for step in probe.steps:
        if step.id in log.results:
            r.results[step.id] = log.results[step.id]
    return _unreported(log, problem)


def _ran_on(r: Run, probe_name: str, pod: Object) -> None:
    """Remember the node the probe's pod ran on, for its verdicts."""
    if pod["spec"].get("nodeName"):
        r.nodes[probe_name] = pod["spec"]["nodeName"]


def _also(problem: str | None, more: str) -> str:
    return (problem + "; " if problem else "") + more


def _log(cluster: ClusterClient, pod: Object, *, namespace: str) -> Log:
    """The probe container's log, parsed."""
    text = cluster.log(pod["metadata"]["name"], namespace=namespace, container="probe", limit_bytes=1 << 20)
    if text is None:
        raise ClusterError(f"pod {namespace}/{pod['metadata']['name']} has no log for container probe")
    return parse(text)


def _unreported(log: Log, problem: str | None) -> str:
    """Why a step of a probe that ran has no result line."""
    why = problem or "the probe printed no result for this step"
    if not log.ended:
        why += "; its log stops before the end"
    if log.sidecar_ready is False:
        why += "; its sidecar never became ready"
    return why


def _judge(r: Run, exp: Expectation, problems: dict[str, str], node: str | None) -> Verdict:
    if exp.skip:
        return verdict(exp, SKIP, exp.skip)
    if exp.blocked:
        return verdict(exp, FAIL, exp.blocked)
    if exp.probe == KUBELET:
        return replace(_kubelet(r, exp, node), node=node)
    found = judge(exp, r.results.get(exp.id), missing=problems.get(exp.probe) or "the probe did not run")
    why = r.context.get(exp.probe)
    if found.verdict == FAIL and why and why not in found.observed:
        found = verdict(exp, FAIL, f"{found.observed}; {why}")
    return replace(found, node=r.nodes.get(exp.probe))


def _kubelet(r: Run, exp: Expectation, node: str | None) -> Verdict:
    assert node is not None, "the kubelet pulls in phase two, on the node picked for it"
    reg = next(x for x in r.cfg.registries if x.name == exp.registry)
    name = f"meshreg-verify-{r.report.run}-pull-{reg.name}"
    pod = objects.pull_pod(name=name, namespace=r.report.namespace, run=r.report.run, node=node,
                           image=f"localhost:{reg.port}/{exp.repo}@{exp.digest}", deadline=int(r.timeout) + 60,
                           placement=r.placement)
    try:
        r.session.create(pod)
    except ClusterError as e:
        return verdict(exp, FAIL, f"could not create the pull pod: {e}")
    return wait_pull(r.session, exp, pod_name=name, timeout=r.timeout, progress=r.progress)


def _pushed(r: Run) -> dict[str, Expectation]:
    """Registry name -> the writer expectation whose push held (with the digest it pushed)."""
    out: dict[str, Expectation] = {}
    for exp in r.planner.expectations:
        if exp.want == "pushed" and r.verdicts[exp.id].verdict == PASS and exp.registry not in out:
            exp.digest = r.results[exp.id]["digest"]
            out[exp.registry] = exp
    return out


def _delete_images(r: Run, platform: Platform) -> None:
    """Delete the probe image where DELETE is enabled and the writer may; otherwise name what stays."""
    pushed = _pushed(r)
    deletions = []
    for reg in r.cfg.registries:
        exp = pushed.get(reg.name)
        deletion = _deletion(r, reg, pushed=exp) if exp is not None else None
        if deletion is not None:
            deletions.append(deletion)
    if deletions:
        verdicts = _phase(r, [d for d, _ in deletions], platform=platform, record=False)
        for (_, where), v in zip(deletions, verdicts, strict=True):
            r.report.notes.append(f"deleted the probe image {where}" if v.verdict == PASS else
                                  f"could not delete the probe image {where}: {v.observed}")


def _deletion(r: Run, reg: Registry, *, pushed: Expectation) -> tuple[Expectation, str] | None:
    """The step that deletes the probe image of a push that held, and what it deletes; None (and a note saying what
    stays) where the registry or the writer does not allow it."""
    writer = next(w for w in r.cfg.writers_of(reg) if w.service_account == pushed.identity)
    where = f"{reg.name}: {pushed.repo}@{pushed.digest}"
    if not (reg.delete_enabled and writer.delete):
        why = "deleteEnabled is false" if not reg.delete_enabled else f"{writer.service_account} may not delete"
        r.report.notes.append(f"left in registry {where} ({why}); the registry's garbage collection can remove "
                              "it once it is deleted")
        return None
    return r.planner.deletion(reg, pushed), where
