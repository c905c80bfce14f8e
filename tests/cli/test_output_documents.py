"""Every `-o json` / `-o yaml` document has the shape docs/output.md documents: apiVersion meshreg.dev/v1alpha1, its
kind, and exactly the documented keys at every level (compared with the page's example of that kind); JSON and YAML
carry the same document. Each command runs through click on the fake cluster."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from meshreg.cluster import apply as applying
from meshreg.render import render
from support import fakes
from support.configs import GC_CONFIG
from support.doctor_helpers import cluster_with_istio
from support.fakes import FakeCluster, ready_controller, route
from support.ingress_configs import CLIENTS, ingress_text
from support.paths import ROOT
from support.verify_helpers import CONFIG as VERIFY_CONFIG
from support.verify_helpers import deployed_cluster

PAGE = ROOT / "docs" / "output.md"
# Maps whose keys are data, not shape: counts per action, the published addresses, the gc Job's own result, ...
FREE = {"counts", "addresses", "directories", "selector", "claims", "result"}


def documented() -> dict[str, Any]:
    """The example document of each kind on docs/output.md (its ```json blocks)."""
    blocks = re.findall(r"```json\n(.*?)```", PAGE.read_text(), flags=re.S)
    docs = [json.loads(b) for b in blocks]
    return {d["kind"]: d for d in docs if isinstance(d, dict) and d.get("apiVersion") == "meshreg.dev/v1alpha1"}


def shape_problems(real: Any, doc: Any, path: str = "") -> list[str]:
    """Where `real` has other keys than `doc` (lists: their first items; null on either side: not compared)."""
    if real is None or doc is None:
        return []
    if isinstance(doc, dict) and isinstance(real, dict):
        if path.rsplit(".", 1)[-1] in FREE:
            return []
        if set(real) != set(doc):
            return [f"{path or '.'}: keys {sorted(real)} != documented {sorted(doc)}"]
        return [p for k in doc for p in shape_problems(real[k], doc[k], f"{path}.{k}")]
    if isinstance(doc, list) and isinstance(real, list):
        return shape_problems(real[0], doc[0], f"{path}[]") if real and doc else []
    if type(real) is not type(doc) and not {type(real), type(doc)} <= {int, float}:
        return [f"{path}: {type(real).__name__} where the page shows {type(doc).__name__}"]
    return []


def run(*args: str) -> tuple[dict, dict]:
    """The command's -o json and -o yaml documents."""
    out = []
    for fmt in ("json", "yaml"):
        result = CliRunner().invoke(main, [*args, "-o", fmt])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        out.append(json.loads(result.stdout) if fmt == "json" else yaml.safe_load(result.stdout))
    return out[0], out[1]


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def status(here, monkeypatch) -> tuple[dict, dict]:
    fakes.connected(monkeypatch)
    CliRunner().invoke(main, ["up", "-q"])
    return run("status")


def up(here, monkeypatch) -> tuple[dict, dict]:
    fakes.connected(monkeypatch)
    return run("up", "-q")


def down(here, monkeypatch) -> tuple[dict, dict]:
    fakes.connected(monkeypatch)
    CliRunner().invoke(main, ["up", "-q"])
    return run("down")


def doctor(here, monkeypatch) -> tuple[dict, dict]:
    route(monkeypatch, cluster_with_istio())
    return run("doctor")


def verify(here, monkeypatch) -> tuple[dict, dict]:
    (here / "meshreg.yaml").write_text(VERIFY_CONFIG)
    route(monkeypatch, deployed_cluster()[0])
    return run("verify", "-q")


def gc(here, monkeypatch) -> tuple[dict, dict]:
    (here / "meshreg.yaml").write_text(GC_CONFIG)
    cluster = FakeCluster()
    cluster.on_apply.append(ready_controller)
    applying.apply(manifests=render(config.load("meshreg.yaml")), cluster=cluster)

    def finish(cluster: FakeCluster, obj: dict) -> None:
        if obj["kind"] == "Job":
            name = obj["metadata"]["name"]
            cluster.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": f"{name}-x", "namespace": "registry", "labels": {"batch.kubernetes.io/job-name": name}}})
            cluster.logs[("registry", f"{name}-x", "gc")] = 'MESHREG-GC-RESULT {"dryRun": true, "retention": []}\n'
            cluster.objects[cluster._key_of(obj)]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}

    cluster.on_apply.append(finish)
    route(monkeypatch, cluster)
    return run("gc", "-q", "--dry-run")


def policy_list(here, monkeypatch) -> tuple[dict, dict]:
    (here / "meshreg.yaml").write_text(ingress_text(clients=CLIENTS, spec="  pushProxy: {repositories: [dev/]}\n"))
    return run("policy", "list")


def policy_check(here, monkeypatch) -> tuple[dict, dict]:
    return run("policy", "check", "--as", "builds/kaniko", "push", "team-a/app:v1")


def certs_list(here, monkeypatch) -> tuple[dict, dict]:
    (here / "meshreg.yaml").write_text(ingress_text(clients=CLIENTS))
    for args in (["certs", "init"], ["certs", "issue", "loader"]):
        assert CliRunner().invoke(main, args).exit_code == 0
    return run("certs", "list")


def audit(here, monkeypatch) -> tuple[dict, dict]:
    from support.audit_cluster import REFUSAL, SIDECAR_LOG, deployed, stamped
    from support.audit_lines import line

    cluster = deployed(fakes.connected(monkeypatch))
    cluster.logs[SIDECAR_LOG] = stamped(line(time="2026-12-06T07:05:00.000Z"), line(**REFUSAL))
    return run("audit")


KINDS: dict[str, Callable[..., tuple[dict, dict]]] = {
    "StatusReport": status, "UpReport": up, "DownReport": down, "DoctorReport": doctor, "VerifyReport": verify,
    "GcReport": gc, "PolicyListing": policy_list, "PolicyCheckReport": policy_check,
    "CertificateListing": certs_list, "AuditReport": audit}


def test_the_page_documents_every_kind_and_nothing_else():
    assert sorted(documented()) == sorted(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_document_has_its_kind_and_exactly_the_documented_keys(kind, here, monkeypatch):
    for doc in KINDS[kind](here, monkeypatch):  # -o json, then -o yaml (a second run: up finds all unchanged)
        assert (doc["apiVersion"], doc["kind"]) == ("meshreg.dev/v1alpha1", kind)
        assert shape_problems(doc, documented()[kind]) == []


def test_yaml_carries_what_json_carries(here, monkeypatch):
    as_json, as_yaml = policy_check(here, monkeypatch)
    assert as_json == as_yaml


def test_render_json_is_a_list_that_kubectl_applies(here):
    result = CliRunner().invoke(main, ["render", "-o", "json"])
    listing = json.loads(result.stdout)
    assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")
    stream = [d for d in yaml.safe_load_all(CliRunner().invoke(main, ["render"]).stdout) if d]
    assert listing["items"] == stream


def test_a_shape_problem_is_found():
    assert shape_problems({"a": 1, "b": [{"c": 1}]}, {"a": 1, "b": [{"d": 1}]}) == [
        ".b[]: keys ['c'] != documented ['d']"]
    assert shape_problems({"a": "x"}, {"a": 1}) == [".a: str where the page shows int"]
