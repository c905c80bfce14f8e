"""The gc Job's coordinator: retention through the registry API, the registry made read-only, distribution's
garbage-collect in another container, the registry made writable again, and one result line for `meshreg gc`.

Order matters. Retention deletes while the registry still accepts writes (DELETE is a write). garbage-collect is
unsafe while anything can write: a blob uploaded between its mark and sweep phases would be swept while a
manifest comes to point at it. So it runs only once every registry pod was restarted read-only; the restart also
empties each pod's in-memory blob cache, which would otherwise still answer for swept blobs.

Whatever happens, the registry is made writable again before the Job ends: on an error, when a garbage-collect
container cannot start or fails, and when the Job is stopped (its deadline, `kubectl delete job`, the pod deleted:
the kubelet sends SIGTERM, and the coordinator withdraws the switch at once, within the grace period). The result
line records when the registry stopped and started taking writes, which `meshreg gc` prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshreg.retention import Retention

from . import kube
from .collect import Collectors, GcError, collect, empty
from .collect import prepare as make_fifos
from .inventory import Inventory, Layout, Reader, Repository
from .registry import Client, RegistryError
from .retention import Plan, select

RESULT = "MESHREG-GC-RESULT "


@dataclass(frozen=True)
class Settings:
    """What the Job does, from its plan (the ConfigMap's plan.json) and its environment."""

    registry: str  # the registry's URL (its Service; the sidecar adds mTLS)
    namespace: str
    deployment: str
    retention: Retention | None
    delete_untagged: bool
    pin: bool  # a ReadWriteOnce volume: keep registry pods on this Job's node while read-only
    dry_run: bool
    shared: Path
    kube_url: str | None
    node: str | None
    sidecar: str | None
    timeout: float
    pod: str  # this Job's pod, whose garbage-collect containers the coordinator follows
    collectors: tuple[str, ...]  # the garbage-collect containers the pod has
    registry_config: str  # the registry's config.yml, mounted from its ConfigMap
    data: str | None  # where the registry's volume is mounted (read-only) to size blobs; None on object storage

    @classmethod
    def load(cls, env: Mapping[str, str]) -> Settings:
        """From the plan file $MESHREG_GC_PLAN names, and the environment."""
        with open(env.get("MESHREG_GC_PLAN", "/etc/meshreg-gc/plan.json"), encoding="utf-8") as f:
            plan = json.load(f)
        return cls(registry=env.get("MESHREG_GC_REGISTRY") or plan["registry"], namespace=plan["namespace"],
                   deployment=plan["deployment"],
                   retention=Retention.from_json(plan["retention"]) if plan.get("retention") else None,
                   delete_untagged=plan["deleteUntagged"], pin=plan["storage"] == "filesystem",
                   dry_run=env.get("MESHREG_GC_DRY_RUN", "") == "true",
                   shared=Path(env.get("MESHREG_GC_SHARED", "/run/meshreg-gc")), kube_url=env.get("MESHREG_GC_KUBE"),
                   node=env.get("NODE_NAME") or None,
                   sidecar=env.get("MESHREG_GC_SIDECAR", "http://127.0.0.1:15020/quitquitquit") or None,
                   timeout=float(plan.get("rolloutTimeout", 600)), pod=env.get("POD_NAME", ""),
                   collectors=tuple(plan.get("collectors", [])),
                   registry_config=env.get("MESHREG_GC_REGISTRY_CONFIG") or plan["registryConfig"],
                   data=env.get("MESHREG_GC_DATA") or plan.get("data"))


def say(text: str) -> None:
    """A line of the Job's log."""
    print(text, flush=True)


def prepare(env: Mapping[str, str] | None = None) -> int:
    """The init container: the FIFOs the garbage-collect containers wait on, and the empty storage."""
    s = Settings.load(os.environ if env is None else env)
    make_fifos(s.shared, s.collectors)
    return 0


class Interrupted(Exception):
    """The kubelet is stopping the pod (SIGTERM: the Job's deadline, the Job or the pod deleted)."""


def _interrupt(signum: int, _frame: object) -> None:
    raise Interrupted(f"stopped by {signal.Signals(signum).name} (the Job's deadline, or the Job or pod deleted)")


def main(env: Mapping[str, str] | None = None, now: Callable[[], float] = time.time) -> int:
    """The whole run; 0 when it went through, 1 when something failed (the result line says what)."""
    s = Settings.load(os.environ if env is None else env)
    result: dict[str, Any] = {"dryRun": s.dry_run, "deployment": f"{s.namespace}/{s.deployment}", "retention": []}
    api = kube.Api(s.kube_url)
    collectors = Collectors(shared=s.shared, names=s.collectors, api=api, pod=s.pod, namespace=s.namespace,
                            timeout=s.timeout)
    signal.signal(signal.SIGTERM, _interrupt)
    client, status = Client(s.registry), 0
    try:
        inventory = retain(s, client, result, now=now()) if s.retention else reader(s, client).read()
        if not s.dry_run and not empty(s, inventory):  # nothing to collect: no restart either
            _read_only(s, api, result, now)
        collect(s, client, inventory, result, collectors)
    except (RegistryError, kube.KubeError, GcError, OSError, Interrupted) as e:
        result["error"] = str(e)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not stop the way back
        if result.get("readOnly"):
            status = _restore(s, api, result, now, wait="error" not in result) or status
        collectors.release()  # after: the way back comes first, within the pod's grace period
        say(RESULT + json.dumps(result, sort_keys=True))
        _stop_sidecar(s)
    return status


def _read_only(s: Settings, api: kube.Api, result: dict[str, Any], now: Callable[[], float]) -> None:
    """Switch the registry read-only and wait until no pod takes writes; the moments go in the result."""
    result["readOnly"] = "switching"  # from here on, whatever happens, the switch is withdrawn
    result["window"] = {"readOnlyFrom": round(now(), 3)}
    _switch(s, api, read_only=True)
    result["readOnly"] = "on"
    result["window"]["readOnlyServing"] = round(now(), 3)


def _switch(s: Settings, api: kube.Api, *, read_only: bool, wait: bool = True) -> None:
    say(f"registry {s.namespace}/{s.deployment}: {'read-only' if read_only else 'writable again'}")
    kube.switch(api, namespace=s.namespace, name=s.deployment, read_only=read_only, node=s.node if s.pin else None)
    if wait and (read_only or not s.pin):  # with a volume the new pod may only start once this Job lets go of it
        kube.wait(api, namespace=s.namespace, name=s.deployment, timeout=s.timeout, say=say)


def _restore(s: Settings, api: kube.Api, result: dict[str, Any], now: Callable[[], float], *, wait: bool) -> int:
    """Withdraw the switch (without waiting for the rollout after a failure or a stop: the pod may be going)."""
    result.setdefault("window", {})["writableFrom"] = round(now(), 3)
    try:
        _switch(s, api, read_only=False, wait=wait)
        result["readOnly"] = "restored"
        return 0
    except kube.KubeError as e:
        result["readOnly"] = "stuck"
        result["error"] = f"{result.get('error', '') + '; ' if result.get('error') else ''}" \
                          f"could not make the registry writable again: {e}"
        return 1


def _stop_sidecar(s: Settings) -> None:
    """Let Istio's sidecar exit so the Job can complete (harmless where sidecars are native)."""
    if not s.sidecar:
        return
    with contextlib.suppress(OSError):
        urllib.request.urlopen(urllib.request.Request(s.sidecar, method="POST"), timeout=5).close()


def reader(s: Settings, client: Client) -> Reader:
    """What reads the registry: its API, and its volume (mounted read-only) for when tags were received."""
    return Reader(client, layout=Layout(s.data) if s.data else None)


def retain(s: Settings, client: Client, result: dict[str, Any], *, now: float) -> Inventory:
    """Apply the retention rules to every repository; returns what was read before deleting."""
    assert s.retention is not None, "retain() runs only with retention rules"
    inventory = reader(s, client).read()
    for name, repo in sorted(inventory.repositories.items()):
        plan = select(s.retention, name, repo.tags, children=repo.children, now=now)
        if not plan.delete_manifests:
            continue
        deleted = _delete(s, client, repo, plan)
        say(f"retention: {name}: {'would delete' if s.dry_run else 'deleted'} {', '.join(plan.delete_tags) or '-'}"
            f" ({len(deleted)} manifests)")
        result["retention"].append({"repository": name, "tags": list(plan.delete_tags), "manifests": deleted})
    return inventory


def _delete(s: Settings, client: Client, repo: Repository, plan: Plan) -> list[str]:
    """The manifests of `plan` deleted, in its order (on a dry run, every one), but those tagged meanwhile."""
    known = {t.name for t in repo.tags}
    return [d for d in plan.delete_manifests
            if s.dry_run or (not _newly_tagged(client, repo.name, known, d) and client.delete_manifest(repo.name, d))]


def _newly_tagged(client: Client, repository: str, known: set[str], digest: str) -> bool:
    """Whether a tag pushed since the repository was read points at `digest` (then it is not deleted)."""
    for tag in set(client.tags(repository)) - known:
        manifest = client.manifest(repository, tag)
        if manifest is not None and manifest.digest == digest:
            say(f"retention: {repository}: keeping {digest}, tagged {tag} meanwhile")
            return True
    return False
