"""Interrupted `up` and `down` on the real API server with the real node: SIGINT and SIGKILL at each phase (up: the
checks, the server's dry run, apply, prune, the rollout wait, the enforcement check; down: the read, the deletes),
stopped at an exact request by a proxy in front of the API server that holds it. Afterwards no object is owned by
nobody (everything the instance labelled carries its ApplySet id and is where its parent points), SIGINT printed one
line and exited 130, and a rerun converges to exactly the objects the config renders, with the same ApplySet labels;
the images' claim keeps its uid and the image pushed at the start pulls back byte-identical through the node proxy.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from meshreg import config, render
from meshreg.render.labels import APPLYSET_ID, APPLYSET_KINDS, APPLYSET_NAMESPACES, APPLYSET_PART_OF, INSTANCE, applyset
from support import faults
from support.apiproxy import ApiProxy
from support.registryclient import Client, blob

NAME, PUSH = "fi-int", "fi-int-push"
PORT, PUSH_PORT, FORWARD = 5252, 5258, 5259  # node proxy, push proxy, a port-forward to the registry pod
TEXT = f"""apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: {NAME}}}
spec:
  namespace: {NAME}
  localRegistryHosting: {{publish: false}}
  registries:
    - {{name: registry, default: true, port: {PORT}, storage: {{size: 256Mi}},
       writers: [{{serviceAccount: fi-intw/pusher}}]PROXY}}
"""
WITH_PROXY = TEXT.replace("PROXY", f", pushProxy: {{repositories: [dev/], port: {PUSH_PORT}, namespace: {PUSH}}}")
WITHOUT_PROXY = TEXT.replace("PROXY", "")
IMAGE = ("kept/app", "v1")

# (command, the config the interrupted command runs with, the one before it, the request it is stopped at (method,
# path and body), what its one line says on SIGINT). A dry-run DELETE says dryRun in its body.
CASES = {
    "up-checks": ("up", WITH_PROXY, WITHOUT_PROXY, r"^POST .*/selfsubjectrulesreviews", "during the checks"),
    # the first dry run is the parent's, beside the checks (cluster/settled.py): a Deployment's is in the dry run
    "up-dry-run": ("up", WITH_PROXY, WITHOUT_PROXY, r"^PATCH /apis/apps/v1/.*dryRun=All",
                   "during the server's dry run"),
    "up-apply": ("up", WITH_PROXY, WITHOUT_PROXY,
                 rf"^PATCH /apis/apps/v1/namespaces/{PUSH}/deployments/push-proxy\?fieldManager=meshreg ",
                 "while applying"),
    "up-prune": ("up", WITHOUT_PROXY, WITH_PROXY, r'^DELETE (?!.*"dryRun")', "while pruning"),
    "up-wait": ("up", WITH_PROXY, WITHOUT_PROXY, r"^GET .*watch=true", "while waiting for the rollout"),
    "up-enforcement": ("up", WITH_PROXY, WITHOUT_PROXY, rf"^GET /api/v1/namespaces/{NAME}/pods\?labelSelector",
                       "while checking that Istio enforces"),
    "down-read": ("down", WITH_PROXY, WITH_PROXY, rf"^GET /api/v1/namespaces/{NAME}/configmaps ",
                  "before anything was deleted"),
    "down-delete": ("down", WITH_PROXY, WITH_PROXY, r'^DELETE (?!.*"dryRun")', "while deleting"),
}
FIGURES = Path("/tmp/meshreg-faults-figures.jsonl")


class Lab:
    """The instance on the stack, the config it was last brought up with, and what must survive."""

    def __init__(self, stack, directory: Path) -> None:
        self.stack, self.directory = stack, directory
        self.volume = faults.Volume(f"{NAME}-registry-data", NAME, "registry-data", size="256Mi")
        self.current = ""
        self.claim_uid = ""
        self.image_digest = ""
        self.proxy = ApiProxy(stack.kubeconfig, directory)

    def write(self, text: str):
        (self.directory / "meshreg.yaml").write_text(text)
        return config.load(str(self.directory / "meshreg.yaml"))

    def meshreg(self, *args: str, kubeconfig: Path | None = None, check: bool = True):
        env = self.stack.env(KUBECONFIG=str(kubeconfig or self.stack.kubeconfig), PYTHONPATH=str(faults.ROOT))
        done = subprocess.run([sys.executable, "-m", "meshreg", *args], cwd=self.directory, env=env,
                              capture_output=True, text=True, timeout=400)
        assert not check or done.returncode == 0, f"meshreg {args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def up(self, text: str) -> None:
        self.write(text)
        self.meshreg("up", "--timeout", "240")
        self.current = text

    def settled(self, *, timeout: float = 300) -> float:
        """Wait until no workload of the instance is on its way out (a pruned push proxy drains its connections
        first); the seconds that took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            found = faults.kubectl_json(self.stack, "get", "deployments.apps,daemonsets.apps", "-A", "-l",
                                        f"{INSTANCE}={NAME}")["items"]
            if not any(o["metadata"].get("deletionTimestamp") for o in found):
                return time.monotonic() - started
            time.sleep(1)
        raise AssertionError(f"workloads of {NAME} still terminating after {timeout:.0f}s")


def _sweep(stack) -> None:
    spaces = [n for n in (NAME, PUSH) if faults.get(stack, "namespace", n) is not None]
    if spaces:
        faults.delete(stack, "namespace", *spaces)
    faults.delete(stack, "persistentvolume", f"{NAME}-registry-data", wait=True)
    faults.delete(stack, "configmap", f"meshreg-{NAME}-registries", namespace="kube-public")
    faults.gone(stack, spaces)


@pytest.fixture(scope="module")
def lab(stack, tmp_path_factory):
    _sweep(stack)
    it = Lab(stack, tmp_path_factory.mktemp(NAME))
    it.volume.create(stack)
    try:
        it.up(WITH_PROXY)
        it.claim_uid = faults.get(stack, "pvc", "registry-data", namespace=NAME)["metadata"]["uid"]
        it.image_digest = _push(stack)
        yield it
    finally:
        it.proxy.close()
        it.meshreg("down", "--purge", "--yes", check=False)
        faults.gone(stack, [NAME, PUSH])
        it.volume.remove(stack)
        _sweep(stack)


def _push(stack) -> str:
    """An image pushed straight to the registry pod (a port-forward reaches its container, not its sidecar)."""
    pod = faults.get(stack, "pods", namespace=NAME, selector="app.kubernetes.io/name=registry")[0]["metadata"]["name"]
    forward = subprocess.Popen(["kubectl", "-n", NAME, "port-forward", f"pod/{pod}", f"{FORWARD}:5000"],
                               env=stack.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "Forwarding from" in (forward.stdout.readline() if forward.stdout else "")
        client = Client(f"http://127.0.0.1:{FORWARD}")
        digest, _ = client.push_image(*IMAGE, [blob("fi-int-a", 300_000), blob("fi-int-b", 200_000)])
        return digest
    finally:
        forward.terminate()
        forward.wait()


def _kinds() -> str:
    """Every kind either config renders, as kubectl names them (`deployment.apps`)."""
    found = set()
    for text in (WITH_PROXY, WITHOUT_PROXY):
        for obj in render.render(_load(text)):
            group = obj["apiVersion"].rpartition("/")[0]
            found.add(f"{obj['kind'].lower()}.{group}" if group else obj["kind"].lower())
    return ",".join(sorted(found))


def _load(text: str):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "meshreg.yaml").write_text(text)
        return config.load(str(Path(tmp) / "meshreg.yaml"))


def _key(obj: dict) -> tuple[str, str | None, str]:
    return obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]


def _labelled(stack, selector: str) -> dict[tuple[str, str | None, str], dict]:
    found = faults.kubectl_json(stack, "get", _kinds(), "-A", "-l", selector)["items"]
    return {_key(o): o for o in found if not o["metadata"].get("deletionTimestamp")}


def owned_by_nobody(stack, cfg) -> list[str]:
    """Objects the instance labelled that its ApplySet does not reach: without the set id, or of a kind or in a
    namespace its parent does not record."""
    mine = _labelled(stack, f"{INSTANCE}={NAME}")
    parent = mine.get(("ConfigMap", NAME, f"meshreg-{NAME}"))
    if parent is None:
        return [f"{k[0]} {k[1]}/{k[2]} (no parent)" for k in mine]
    notes = parent["metadata"].get("annotations") or {}
    kinds = set(notes.get(APPLYSET_KINDS, "").split(","))
    spaces = {NAME, *filter(None, notes.get(APPLYSET_NAMESPACES, "").split(","))}
    out = []
    for key, obj in mine.items():
        group = obj["apiVersion"].rpartition("/")[0]
        kind = f"{obj['kind']}.{group}" if group else obj["kind"]
        labels = obj["metadata"].get("labels") or {}
        if obj is not parent and (labels.get(APPLYSET_PART_OF) != applyset(cfg) or kind not in kinds or
                                  (key[1] or NAME) not in spaces):  # cluster-scoped: found by kind alone
            out.append(f"{key[0]} {key[1]}/{key[2]}")
    return sorted(out)


def converged(stack, cfg) -> None:
    """Exactly the rendered objects carry the set id, and the parent records exactly the rendered kinds and
    namespaces."""
    rendered = {_key(o): o for o in render.render(cfg)}
    parent = ("ConfigMap", NAME, f"meshreg-{NAME}")
    members = {**_labelled(stack, f"{APPLYSET_PART_OF}={applyset(cfg)}"),
               **_labelled(stack, f"{APPLYSET_ID}={applyset(cfg)}")}
    kept = {("Namespace", None, PUSH)} - set(rendered)  # prune never deletes a Namespace: an undisturbed up keeps it
    assert set(members) - kept == set(rendered)
    for key in (APPLYSET_KINDS, APPLYSET_NAMESPACES):
        assert members[parent]["metadata"]["annotations"][key] == rendered[parent]["metadata"]["annotations"][key]
    assert owned_by_nobody(stack, cfg) == []


def data_kept(lab: Lab) -> None:
    claim = faults.get(lab.stack, "pvc", "registry-data", namespace=NAME)
    assert claim["metadata"]["uid"] == lab.claim_uid and claim["status"]["phase"] == "Bound"
    digest, _ = Client(f"http://127.0.0.1:{PORT}").pull(*IMAGE)  # through the node proxy, every digest checked
    assert digest == lab.image_digest


def interrupt(lab: Lab, command: str, hold: str, sig: signal.Signals) -> tuple[subprocess.CompletedProcess, float]:
    """Run `meshreg COMMAND` through the proxy, stop it with `sig` once the request `hold` matches is in flight."""
    pattern = re.compile(hold)
    lab.proxy.hold(lambda method, path, body: bool(pattern.search(f"{method} {path} {body.decode(errors='replace')}")))
    args = ["up", "--timeout", "240"] if command == "up" else ["down"]
    env = lab.stack.env(KUBECONFIG=str(lab.proxy.kubeconfig), PYTHONPATH=str(faults.ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "meshreg", *args], cwd=lab.directory, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_sigint_as_in_a_terminal)
    try:
        if not lab.proxy.held.wait(300):
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"meshreg {command} never sent a request matching {hold}: exit {proc.returncode}\n"
                                 f"{out[-1500:]}\n{err[-1500:]}\n{lab.proxy.requests[-30:]}")
        proc.send_signal(sig)
        started = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        lab.proxy.release()
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), took


def _sigint_as_in_a_terminal() -> None:
    """A command started in the background of a non-interactive shell inherits SIGINT ignored (so would meshreg,
    and Python would then install no handler); in a terminal it is not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.apiserver
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("case", list(CASES))
def test_an_interrupted_command_leaves_nothing_unowned_and_a_rerun_converges(lab, case, sig):
    command, text, before, hold, says = CASES[case]
    lab.up(before)  # whatever an earlier case left
    lab.settled()
    cfg = lab.write(text)
    done, took = interrupt(lab, command, hold, sig)
    if sig == signal.SIGINT:
        assert done.returncode == 130, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith(f"meshreg: error: interrupted {says}"), done.stderr
        assert "Traceback" not in done.stderr and "Aborted" not in done.stderr
        assert took < 5
    else:
        assert done.returncode == -signal.SIGKILL
    unowned = owned_by_nobody(lab.stack, cfg)
    assert unowned == []
    if command == "down":
        lab.meshreg("down")  # finish it, then put it back
        left = {**_labelled(lab.stack, f"{APPLYSET_PART_OF}={applyset(cfg)}"),
                **_labelled(lab.stack, f"{APPLYSET_ID}={applyset(cfg)}")}
        assert set(left) == {("Namespace", None, NAME), ("Namespace", None, PUSH),  # down keeps Namespaces
                             ("PersistentVolumeClaim", NAME, "registry-data"), ("ConfigMap", NAME, f"meshreg-{NAME}")}
    lab.up(text)
    converged(lab.stack, cfg)
    data_kept(lab)
    _figure(case, sig, done, took)


def _figure(case: str, sig: signal.Signals, done: subprocess.CompletedProcess, took: float) -> None:
    line = json.dumps({"figure": "interrupted", "case": case, "signal": sig.name, "exit": done.returncode,
                       "exited_after_s": round(took, 2),
                       "said": (done.stderr.strip().splitlines() or [""])[-1][:300]})
    print("FIGURE", line)
    with FIGURES.open("a") as f:
        f.write(line + "\n")
