"""gc and retention on real pods: `meshreg gc` runs the rendered CronJob's Job (its coordinator in the mesh as the
retention identity, deleting through the registry's sidecar; the registry restarted read-only through the API;
distribution's garbage-collect on the registry's volume; writable again), with every image preloaded under a name no
registry serves (airgapped: IfNotPresent, nothing pulled). Images are pushed from this host through the push proxy,
with the build times retention reads."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest

from support import realstack
from support.lab import images
from support.realstack_images import PYTHON, REGISTRY, ensure
from support.realstack_pods import pod_events

NODE_PORT, CONNECT_PORT = 5112, 5113
ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
CONFIG = f"""\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {{name: rs-gc}}
spec:
  namespace: rs-gc
  nodeProxy: {{port: {NODE_PORT}}}
  localRegistryHosting: {{publish: false}}
  registry:
    image: {REGISTRY}
    deleteEnabled: true
    storage: {{size: 1Gi}}
    gc:
      schedule: "0 3 * * 0"
      image: {PYTHON}
      timeout: 10m
    retention:
      rules: [{{repositories: [apps/], keepNewest: 1}}]
  pushProxy:
    repositories: ["*"]
    port: {CONNECT_PORT}
"""


@pytest.fixture(scope="module")
def instance(stack, workdir):
    ensure(stack, PYTHON)
    ensure(stack, REGISTRY)
    with realstack.deployed(stack, workdir, CONFIG) as found:
        yield found


def push(instance: realstack.Instance, workdir, *tags: tuple[str, int]) -> subprocess.CompletedProcess:
    """Push apps/web:TAG built on 2026-01-DAY for each (TAG, DAY), through meshreg connect; the last skopeo run."""
    with instance.running("connect", ready="forwarding "):
        for tag, day in tags:
            image = images.build(workdir / tag, layer_sizes=(256 << 10,), created=f"2026-01-{day:02d}T00:00:00Z")
            done = subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", image.ref,
                                   f"docker://localhost:{CONNECT_PORT}/apps/web:{tag}"],
                                  capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def pushed(instance, workdir):
    """apps/web:v1 (built 2026-01-01) and apps/web:v2 (2026-01-02)."""
    push(instance, workdir, ("v1", 1), ("v2", 2))


def served(tag: str) -> int:
    return httpx.get(f"http://127.0.0.1:{NODE_PORT}/v2/apps/web/manifests/{tag}", headers=ACCEPT,
                     timeout=10).status_code


def test_a_dry_run_says_what_retention_would_delete_and_deletes_nothing(instance, pushed):
    found = instance.json("gc", "--dry-run", "--timeout", "300", timeout=400)
    assert found["state"] == "Complete", found
    [entry] = found["result"]["retention"]
    assert (entry["repository"], entry["tags"]) == ("apps/web", ["v1"])
    assert served("v1") == 200 and served("v2") == 200


def test_gc_deletes_by_retention_collects_and_leaves_the_registry_writable(instance, pushed, workdir):
    done = instance.meshreg("gc", "--timeout", "300", timeout=400)
    assert "retention: apps/web: deleted v1 (1 manifests)" in done.stdout, done.stdout
    # the window the registry took no writes, as meshreg gc reports it (its figures vary from run to run)
    window = (r"^registry rs-gc/registry: read-only for \d+ s, [0-9:]+ to [0-9:]+ UTC \(restarting read-only \d+ s, "
              r"garbage-collect \d+ s, restarting writable \d+ s\); writable again$")
    assert re.search(window, done.stdout, re.M), done.stdout
    assert "garbage-collect: 3 blobs deleted" in done.stdout and "reclaimed" in done.stdout  # layer, config, manifest
    assert served("v1") == 404 and served("v2") == 200
    push(instance, workdir / "after", ("v3", 3))  # writable again
    assert served("v3") == 200


def test_the_gc_job_ran_airgapped_with_preloaded_images(instance, pushed, stack):
    pods = instance.pods("app.kubernetes.io/component=gc")
    assert pods, "no gc pod left to look at"
    events = " ".join(e for p in pods for e in pod_events(stack, instance.namespace, p))
    assert f'Container image "{PYTHON}" already present on machine' in events
    assert f'Container image "{REGISTRY}" already present on machine' in events
    assert "Pulling" not in events


def test_status_shows_the_last_run(instance, pushed):
    gc = instance.json("status")["registries"][0]["gc"]
    assert gc["deployed"] and gc["lastJob"]["state"] == "Complete", json.dumps(gc)
