"""The doctor operation and its DoctorReport: the same results whether the caller renders the config or the operation
does, and counts, ok and the exit code following the results (a WARN never fails doctor)."""

from __future__ import annotations

from meshreg.config import DEFAULT
from meshreg.doctor import DoctorReport, fail, ok, warn
from meshreg.operations.doctor import doctor
from meshreg.render import render
from support.doctor_helpers import cluster_with_istio


def test_the_operation_renders_the_config_itself_when_the_caller_has_not():
    fake = cluster_with_istio()
    given = doctor(DEFAULT, fake, checks=("istio", "storage"), manifests=render(DEFAULT))
    assert doctor(DEFAULT, fake, checks=("istio", "storage")) == given
    assert (given.server, given.config, given.namespace) == ("https://fake.invalid:6443", "<built-in default>",
                                                             "meshreg")
    assert {r.check for r in given.results} == {"istio", "storage"} and given.ok


def test_without_checks_named_every_group_runs_in_order():
    report = doctor(DEFAULT, cluster_with_istio(), checks=None)
    checks = list(dict.fromkeys(r.check for r in report.results))
    assert checks == ["api", "istio", "trust-domain", "writers", "policies", "nodes", "admission", "storage", "audit",
                      "bypass", "deployed"]


def test_warnings_leave_the_report_ok_and_one_failure_does_not():
    results = (ok("api", "answers"), warn("nodes", "no nodes found", "add nodes"))
    report = DoctorReport("https://x", "m.yaml", "meshreg", results)
    assert report.ok and report.exit_code == 0 and report.counts == {"OK": 1, "WARN": 1, "FAIL": 0}
    failing = DoctorReport("https://x", "m.yaml", "meshreg", (*results, fail("storage", "no class", "add one")))
    assert not failing.ok and failing.exit_code == 1 and failing.counts == {"OK": 1, "WARN": 1, "FAIL": 1}
