"""Before `up`, the api check asks only delete (what prune needs): `up` itself reads what exists (get, list) and
dry-runs every object (create, patch), which proves the rest and reports each refusal at once."""

from __future__ import annotations

from meshreg import doctor
from meshreg.config import DEFAULT
from meshreg.doctor.facts import Facts
from meshreg.render import render
from support.doctor_helpers import cluster_with_istio

ADMIN = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]


def api_check(fake, *, dry_run_follows: bool):
    facts = Facts(fake, DEFAULT, render(DEFAULT), dry_run_follows=dry_run_follows)
    return doctor.run(facts=facts, groups=["api"])[1]


def test_before_up_only_delete_is_asked_and_no_access_review_is_sent_for_cluster_scoped_kinds():
    fake = cluster_with_istio()
    fake.rules = {"meshreg": ADMIN, "kube-public": ADMIN}
    asked = []
    fake.allowed = lambda a: asked.append(a) or True
    access = api_check(fake, dry_run_follows=True)
    assert access.status == "OK" and access.message.startswith("you may delete what up prunes (")
    assert asked == []  # the Namespace's get, create and patch are the dry run's to prove


def test_before_up_a_missing_delete_still_fails_before_anything_is_applied():
    fake = cluster_with_istio()
    fake.rules = {"meshreg": [{"verbs": ["get", "list", "create", "patch"], "apiGroups": ["*"], "resources": ["*"]}],
                  "kube-public": ADMIN}
    access = api_check(fake, dry_run_follows=True)
    assert access.status == "FAIL" and access.message.startswith("you may not: delete ")


def test_doctor_itself_still_asks_everything_up_and_down_need():
    fake = cluster_with_istio()
    fake.rules = {"meshreg": ADMIN, "kube-public": ADMIN}
    asked = []
    fake.allowed = lambda a: asked.append(a) or True
    access = api_check(fake, dry_run_follows=False)
    assert access.message.startswith("you may do what up and down need (")
    assert {a["verb"] for a in asked} == {"create", "get", "patch"}  # the Namespace, cluster-scoped
