"""`meshreg policy check` (offline, Istio semantics) agrees with the real Envoy on every raw request."""

from __future__ import annotations

import httpx
import pytest

from support.e2e_cases import CASES, envoy_decision


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_offline_check_agrees_with_envoy(lab, policy_check, case):
    assert policy_check(lab.config_file, case.identity, case.method, case.path) == envoy_decision(lab, case)


def test_the_offline_check_denies_anonymous_writes_like_strict_mtls(lab, policy_check):
    with pytest.raises(httpx.TransportError):
        httpx.post(f"https://{lab.sidecar}/v2/open/app/blobs/uploads/", verify=False)
    assert policy_check(lab.config_file, "anonymous", "POST", "/v2/open/app/blobs/uploads/") == "DENY"
