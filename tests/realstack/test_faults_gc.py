"""gc on real pods: the Job runs its garbage-collect as the registry image's own binary (no shell: the lab's registry
image has none), pushes in its read-only window are refused cleanly and retried, reads pause only while the registry
restarts, no blob a manifest references is ever deleted (every manifest pulled back after gc with concurrent writers),
and the registry is writable again whenever the Job is stopped: deleted, its pod killed, its deadline reached."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from support import faults
from support.registryclient import Client, Failed

PORT = 5249
REGISTRY = f"http://127.0.0.1:{PORT}"  # the node proxy's hostPort on this host (the node)
WRITERS = "fl-gcw"
CONFIG = f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: fl-gc}}
spec:
  namespace: fl-gc
  localRegistryHosting: {{publish: false}}
  nodeProxy: {{port: {PORT}}}
  registry:
    deleteEnabled: true
    storage: {{size: 1Gi}}
    gc: {{schedule: "0 3 * * 0", deleteUntagged: true, image: "{faults.PYTHON_IMAGE}", timeout: 20m}}
    retention: {{rules: [{{repositories: [keep/], keepNewest: 2}}]}}
  writers: [{{serviceAccount: {WRITERS}/pusher}}]
"""
FIGURES = Path("/tmp/meshreg-faults-figures.jsonl")


def figure(name: str, **values) -> None:
    """A figure of this run: printed, and kept in FIGURES for the closing note."""
    line = json.dumps({"figure": name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **values})
    print("FIGURE", line)
    with FIGURES.open("a") as f:
        f.write(line + "\n")


@pytest.fixture(scope="module")
def registry(stack, tmp_path_factory):
    faults.python_image(stack)
    with faults.deployed(stack, tmp_path_factory.mktemp("fl-gc"), CONFIG, accounts=(f"{WRITERS}/pusher",)) as it:
        faults.client_config_map(stack, WRITERS)
        yield it


@pytest.fixture(scope="module")
def seeded(stack, registry):
    """Something to collect: three images pushed once."""
    writer = push(stack, "seeded", "--repo", "seeded/app", "--layers", "2", "--shared", "0", "--size", "100000",
                  images=3)
    assert len(faults.client_result(stack, WRITERS, writer["name"])["pushed"]) == 3
    return registry


def push(stack, name: str, *args: str, seconds: float = 0, images: int = 0) -> dict:
    """Start a writer pod pushing (for `seconds` or `images`); returns the pod's name."""
    base = "http://registry.fl-gc.svc.cluster.local:5000"
    stack.apply(faults.writer_pod(WRITERS, name, "pusher", [
        "push", "--base", base, "--writer", name, "--seconds", str(seconds or 3600), "--images", str(images), *args],
        node=stack.node))
    return {"name": name}


class Poller(threading.Thread):
    """Reads a manifest through the node proxy every 0.2 s, recording when reads fail."""

    def __init__(self, repo: str, tag: str) -> None:
        super().__init__(daemon=True)
        self.repo, self.tag, self.stop = repo, tag, threading.Event()
        self.seen: list[tuple[float, str]] = []

    def run(self) -> None:
        client = Client(REGISTRY, timeout=5)
        while not self.stop.is_set():
            try:
                client.manifest(self.repo, self.tag)
                self.seen.append((time.time(), "ok"))
            except Failed as e:
                self.seen.append((time.time(), str(e).split(": ", 1)[-1][:60]))
            time.sleep(0.2)

    def outages(self) -> list[dict]:
        """Each stretch of failed reads: from, seconds, and how they failed."""
        out: list[dict] = []
        for at, what in self.seen:
            if what == "ok":
                if out and "seconds" not in out[-1]:
                    out[-1]["seconds"] = round(at - out[-1]["from"], 1)
                continue
            if not out or "seconds" in out[-1]:
                out.append({"from": at, "errors": {}})
            out[-1]["errors"][what] = out[-1]["errors"].get(what, 0) + 1
        return out


def verify_everything(client: Client) -> tuple[int, int]:
    """Pull every tag of every repository and check every digest; (manifests, bytes)."""
    manifests = size = 0
    for repo in client.catalog():
        for tag in client.tags(repo):
            size += client.pull(repo, tag)[1]
            manifests += 1
    return manifests, size


def test_gc_during_pushes_refuses_them_cleanly_and_deletes_no_blob_a_manifest_references(stack, registry):
    seed = push(stack, "seed", "--repo", "keep/app", "--layers", "2", "--shared", "0", "--size", "200000",
                images=4)
    assert len(faults.client_result(stack, WRITERS, seed["name"])["pushed"]) == 4
    poller = Poller("keep/app", "seed-3")
    poller.start()
    writers = [push(stack, f"racer-{i}", "--repo", f"race/w{i}", "--layers", "3", "--shared", "1", "--size", "524288",
                    seconds=100) for i in range(3)]
    time.sleep(20)
    gc = registry.meshreg("gc", timeout=900)
    results = [faults.client_result(stack, WRITERS, w["name"], timeout=400) for w in writers]
    time.sleep(3)
    poller.stop.set()
    poller.join()
    client = Client(REGISTRY)
    for result in results:  # every push that succeeded pulls back byte for byte
        for image in result["pushed"]:
            assert client.pull(result["repo"], image["digest"])[0] == image["digest"]
    manifests, size = verify_everything(client)
    window = next(line for line in gc.stdout.splitlines() if "read-only for" in line)
    refused = _refusals(results)
    figure("gc-during-pushes", gc=gc.stdout.strip().splitlines(), window=window,
           pushed=sum(len(r["pushed"]) for r in results), failed=sum(len(r["failed"]) for r in results),
           failures=[f["error"][:160] for r in results for f in r["failed"]], refused_requests=refused,
           pull_outages=poller.outages(), verified_manifests=manifests, verified_bytes=size)
    assert sum(len(r["pushed"]) for r in results) > 0
    assert set(refused) <= {"405", "503", "RemoteDisconnected", "ConnectionResetError", "ConnectionRefusedError",
                            "BrokenPipeError", "IncompleteRead", "TimeoutError"}, refused
    assert sorted(client.tags("keep/app")) == ["seed-2", "seed-3"]  # retention kept the newest two


def _refusals(results: list[dict]) -> dict[str, int]:
    """How the writers' requests that did not succeed ended, counted."""
    out: dict[str, int] = {}
    for result in results:
        for r in result["requests"]:
            status = str(r["status"])
            if status not in ("200", "201", "202", "404"):
                out[status] = out.get(status, 0) + 1
    return out


# --- stopping the Job at any step


def start_job(stack, *, deadline: int | None = None) -> str:
    """A Job from the gc CronJob, as meshreg gc makes it (with `deadline`: activeDeadlineSeconds)."""
    from meshreg.cluster.gc import job_from

    cron = faults.get(stack, "cronjob", "registry-gc", namespace="fl-gc")
    job = job_from(cron, dry_run=False, now=time.time())
    if deadline is not None:
        job["spec"]["activeDeadlineSeconds"] = deadline
    stack.apply(job)
    return str(job["metadata"]["name"])


def wait_for_log(stack, job: str, text: str, *, timeout: float = 300) -> float:
    """When the Job's coordinator printed a line containing `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = stack.kubectl("-n", "fl-gc", "logs", f"job/{job}", "-c", "gc", check=False)
        if text in done.stdout:
            return time.time()
        time.sleep(0.5)
    raise AssertionError(f"Job {job} never printed {text!r}")


def until(condition, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def read_only(stack) -> bool:
    deployment = faults.get(stack, "deployment", "registry", namespace="fl-gc")
    return "REGISTRY_STORAGE_MAINTENANCE_READONLY" in json.dumps(deployment["spec"]["template"]["spec"])


def serving() -> bool:
    try:
        Client(REGISTRY, timeout=5).request("v2", "GET", "/v2/")
        return True
    except Failed:
        return False


def writable_again(stack, *, since: float, timeout: float = 180) -> float:
    """Seconds from `since` until the registry has no read-only switch and is rolled out and serving."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not read_only(stack) and serving():
            stack.kubectl("-n", "fl-gc", "rollout", "status", "deployment/registry", "--timeout=180s")
            if serving():
                return round(time.time() - since, 1)
        time.sleep(0.5)
    raise AssertionError("the registry stayed read-only")


@pytest.mark.parametrize("when", ["switched", "collecting"])
@pytest.mark.parametrize("how", ["delete-job", "kill-pod", "deadline"])
def test_the_registry_is_writable_again_whichever_way_the_job_stops(stack, seeded, how, when):
    job = start_job(stack)
    if when == "switched":  # the registry restarts read-only
        wait_for_log(stack, job, "read-only")
        until(lambda: read_only(stack))
    else:  # garbage-collect runs (the registry is read-only)
        wait_for_log(stack, job, "garbage-collect: garbage-collect")
        assert read_only(stack)
    stopped = time.time()
    if how == "delete-job":
        stack.kubectl("-n", "fl-gc", "delete", "job", job, "--wait=false")
    elif how == "kill-pod":
        stack.kubectl("-n", "fl-gc", "delete", "pod", "-l", f"batch.kubernetes.io/job-name={job}", "--grace-period=0",
                      "--force", "--wait=false")
    else:  # the deadline, reached now (it may be changed while the Job runs)
        started = faults.get(stack, "job", job, namespace="fl-gc")["status"]["startTime"]
        elapsed = time.time() - time.mktime(time.strptime(started, "%Y-%m-%dT%H:%M:%SZ")) + time.timezone
        stack.kubectl("-n", "fl-gc", "patch", "job", job, "--type=merge", "-p",
                      json.dumps({"spec": {"activeDeadlineSeconds": int(elapsed) + 1}}))
        stopped = wait_for_deadline(stack, job)
    seconds = writable_again(stack, since=stopped)
    writer = push(stack, f"after-{how}", "--repo", "after/app", "--layers", "1", "--shared", "0", "--size", "10000",
                  images=1)
    result = faults.client_result(stack, WRITERS, writer["name"])
    figure("gc-stopped", how=how, when=when, writable_after_seconds=seconds)
    assert len(result["pushed"]) == 1, result["failed"]


def wait_for_deadline(stack, job: str, *, timeout: float = 120) -> float:
    """When the Job controller ended the Job for its deadline (DeadlineExceeded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = faults.get(stack, "job", job, namespace="fl-gc")
        for condition in (found or {}).get("status", {}).get("conditions") or []:
            if condition.get("reason") == "DeadlineExceeded":
                return time.time()
        time.sleep(0.5)
    raise AssertionError(f"Job {job} did not reach its deadline")


def test_a_coordinator_killed_outright_is_named_by_status_and_undone_by_the_next_gc(stack, seeded):
    """SIGKILL (an OOM kill, a lost node) gives the coordinator no chance: status says the registry was left
    read-only, and meshreg gc makes it writable before anything else."""
    import os
    import signal

    job = start_job(stack)
    wait_for_log(stack, job, "garbage-collect: garbage-collect")
    [pod] = faults.get(stack, "pods", namespace="fl-gc", selector=f"batch.kubernetes.io/job-name={job}")
    os.kill(faults.container_pid(stack, faults.container_id(pod, "gc")), signal.SIGKILL)
    until(lambda: "terminated" in json.dumps(next(
        c["state"] for c in faults.get(stack, "pod", pod["metadata"]["name"], namespace="fl-gc")["status"][
            "containerStatuses"] if c["name"] == "gc")))
    registry = seeded
    status = registry.meshreg("status", check=False)
    assert status.returncode == 1 and "READ-ONLY: left so by a gc Job stopped before it could undo it" in \
        status.stdout, status.stdout
    gc = registry.meshreg("gc", timeout=900, check=False)
    if gc.returncode:
        for p in faults.get(stack, "pods", namespace="fl-gc", selector="app.kubernetes.io/component=gc"):
            print(p["metadata"]["name"], json.dumps([(c["name"], c["state"]) for c in p["status"].get(
                "containerStatuses", [])]))
    figure("gc-after-a-killed-coordinator", status=[line for line in status.stdout.splitlines() if "READ-ONLY" in line],
           gc=gc.stdout.strip().splitlines())
    assert gc.stdout.startswith("registry fl-gc/registry is read-only, and no gc Job is running to make it writable "
                                "again (the last one was stopped before it could): made it writable again first")
    assert not read_only(stack) and registry.meshreg("status", check=False).returncode == 0
    stack.kubectl("-n", "fl-gc", "delete", "job", job, "--wait=false")
