"""`meshreg verify` through click on the fake cluster: the table, -o json, bad input, and Ctrl-C or SIGTERM (the
probes removed, what was removed said, exit 130)."""

from __future__ import annotations

import json
import os
import signal

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from meshreg.cli.output.verify import text
from meshreg.verify import Verdict, VerifyReport
from support.fakes import route
from support.verify_helpers import CONFIG, deployed_cluster, leftovers


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(CONFIG)
    cluster, _, _ = deployed_cluster()
    return route(monkeypatch, cluster)


def test_verify_prints_the_table_and_exits_zero_when_every_expectation_held(fake):
    result = CliRunner().invoke(main, ["verify", "-q"])
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["EXPECTATION", "OBSERVED", "NODE", "VERDICT"]
    assert rows[0].startswith("writer builds/kaniko pushes meshreg-verify/") and rows[0].endswith("node-a  PASS")
    assert next(r for r in rows if r.startswith("kubelet pulls")).endswith("node-b  PASS")
    assert any(r.startswith("9 of 9 expectations held (node-proxy and kubelet probes on node-b, run ") for r in rows)


def test_verify_json_and_exit_one_when_an_expectation_fails(fake):
    fake.pod_logs.clear()
    fake.on_create[0].logs = False
    result = CliRunner().invoke(main, ["verify", "-o", "json"])
    data = json.loads(result.stdout)
    assert result.exit_code == 1 and data["ok"] is False
    assert set(data["expectations"][0]) == {"registry", "expectation", "expected", "observed", "verdict", "node"}


def test_verify_as_someone_who_is_not_a_writer_is_bad_input(fake):
    result = CliRunner().invoke(main, ["verify", "--as", "apps/web"])
    assert result.exit_code == 2
    assert "--as apps/web: not a writer of any registry in meshreg.yaml" in result.output
    assert not [r for r in fake.requests if r[0] == "create"]


def stop_while_waiting_for_probes(fake, stop) -> None:
    """Call `stop` (which raises or signals) the first time verify looks at a probe Job."""
    original = fake.get

    def get(api_version, kind, name, **kw):
        if kind == "Job" and not getattr(get, "stopped", False):
            get.stopped = True
            stop()
        return original(api_version, kind, name, **kw)
    fake.get = get


def test_ctrl_c_removes_every_probe_says_what_it_removed_and_exits_130(fake):
    def ctrl_c():
        raise KeyboardInterrupt
    stop_while_waiting_for_probes(fake, ctrl_c)
    result = CliRunner().invoke(main, ["verify", "-q"])
    assert result.exit_code == 130, result.output
    *notes, last = result.output.splitlines()
    assert last == "meshreg: interrupted"
    assert any(n.startswith("meshreg: removed namespace meshreg-verify-") for n in notes)
    assert "EXPECTATION" not in result.output
    assert leftovers(fake) == []


def test_sigterm_stops_verify_as_ctrl_c_does_and_its_own_handler_is_put_back(fake):
    received = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        stop_while_waiting_for_probes(fake, lambda: os.kill(os.getpid(), signal.SIGTERM))
        result = CliRunner().invoke(main, ["verify", "-q"])
        assert result.exit_code == 130, result.output
        assert result.output.splitlines()[-1] == "meshreg: interrupted"
        assert leftovers(fake) == []
        assert received == []  # verify's handler had it, not the one before
        os.kill(os.getpid(), signal.SIGTERM)
        assert received == [signal.SIGTERM]  # and the one before is back
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_with_several_registries_each_row_names_its_registry_and_long_observations_wrap():
    report = VerifyReport("https://x", "abc123", "meshreg-verify-abc123", ("images", "cache"), "node-b", [
        Verdict("images", "writer builds/kaniko pushes x", "pushed", "pushed sha256:abababababab…", "PASS",
                "node-a"),
        Verdict("cache", "a pod with no sidecar pulls", "refused", "layer: no HTTP answer (curl: (56) Recv failure: "
                "Connection reset by peer) and then some more words", "FAIL", "node-b")], ["removed namespace x"])
    assert text(report).splitlines() == [
        ("EXPECTATION                                      "
         "OBSERVED                                                      NODE    VERDICT"),
        ("[images] writer builds/kaniko pushes x → pushed  "
         "pushed sha256:abababababab…                                   node-a  PASS"),
        ("[cache] a pod with no sidecar pulls → refused    "
         "layer: no HTTP answer (curl: (56) Recv failure: Connection    node-b  FAIL"),
        ("                                                 "
         "reset by peer) and then some more words"),
        "1 of 2 expectations held (node-proxy and kubelet probes on node-b, run abc123)",
        "note: removed namespace x"]
