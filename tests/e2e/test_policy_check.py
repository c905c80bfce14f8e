"""`meshreg policy check` (offline, Istio semantics) agrees with the real Envoy on every raw request."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from e2e_cases import CASES, Case, send


MESHREG = [sys.executable, "-m", "meshreg"]  # the meshreg of the interpreter running the tests, PATH or not


@pytest.fixture(scope="session")
def policy_check():
    argv = MESHREG
    if subprocess.run([*argv, "policy", "--help"], capture_output=True).returncode != 0:
        pytest.skip("meshreg policy check not available")

    def check(config_file, identity: str, method: str, path: str) -> str:
        result = subprocess.run([*argv, "policy", "check", "-c", str(config_file), "--as", identity, method, path,
                                 "-o", "json"], capture_output=True, text=True)
        assert result.returncode in (0, 3), result.stderr
        decision = json.loads(result.stdout)["decision"]
        assert decision == ("ALLOW" if result.returncode == 0 else "DENY")
        return decision

    return check


def envoy_decision(lab, case: Case) -> str:
    return "DENY" if send(lab, case).status_code == 403 else "ALLOW"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_offline_check_agrees_with_envoy(lab, policy_check, case):
    assert policy_check(lab.config_file, case.identity, case.method, case.path) == envoy_decision(lab, case)


def test_the_offline_check_denies_anonymous_writes_like_strict_mtls(lab, policy_check):
    with pytest.raises(httpx.TransportError):
        httpx.post(f"https://{lab.sidecar}/v2/open/app/blobs/uploads/", verify=False)
    assert policy_check(lab.config_file, "anonymous", "POST", "/v2/open/app/blobs/uploads/") == "DENY"
