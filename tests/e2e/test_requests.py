"""Raw requests (path tricks, forged headers, every identity) against the real Envoy and registry."""

from __future__ import annotations

import pytest

from support.e2e_cases import CASES, send


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_request_gets_the_decision_istio_semantics_prescribe(lab, case):
    response = send(lab, case)
    if case.denied is True:
        assert response.status_code == 403, response.text
    elif case.denied is False:
        assert response.status_code != 403, response.text
    if case.outside:
        assert case.outside not in lab.repositories(), f"{case.path} wrote into {case.outside}"
