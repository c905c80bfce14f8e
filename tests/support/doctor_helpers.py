"""Shared set-up for the doctor tests: a config, its render and the fake cluster, as doctor sees them."""

from __future__ import annotations

from meshreg import doctor
from meshreg.config import DEFAULT, from_text
from meshreg.doctor.facts import Facts
from meshreg.render import render
from support.fakes import INJECTOR, FakeCluster

WRITERS = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: meshreg}
spec:
  writers:
    - serviceAccount: builds/kaniko
    - serviceAccount: team-a/builder
      repositories: [team-a/]
"""


def cluster_with_istio() -> FakeCluster:
    fake = FakeCluster()
    fake.put(INJECTOR)
    return fake


def facts(fake, text: str | None = None) -> Facts:
    cfg = from_text(text, name="meshreg.yaml") if text else DEFAULT
    return Facts(fake, cfg, render(cfg))


def check(fake, group: str, text: str | None = None) -> list:
    return doctor.run(facts=facts(fake, text), groups=[group])


def lines(results, status: str | None = None) -> list[str]:
    return [r.message for r in results if status is None or r.status == status]


def namespace(name: str, **labels) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def service_account(ns: str, name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}}


def pod(ns: str, name: str, *, spec: dict, labels=None, phase="Running") -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": spec, "status": {"phase": phase}}
