"""Raw requests through the ingress (real Envoy with the translated Gateway, jwt_authn and RBAC, in front of the
registry's mTLS sidecar): each client stays in its prefixes, path tricks change nothing, and `meshreg policy check`
agrees with Envoy on every one."""

from __future__ import annotations

import pytest

from support.ingress_cases import CASES, IngressCase, client, refused_at_gateway, send


@pytest.fixture(params=["shared", "dedicated"])
def some_ingress_lab(request):
    """Each request goes through both gateways: DENY rules only, and DENY rules plus the ALLOW policy."""
    return request.getfixturevalue("ingress_lab" if request.param == "shared" else "dedicated_ingress_lab")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_request_through_the_ingress_gets_the_decision_istio_prescribes(some_ingress_lab, case: IngressCase):
    ingress_lab = some_ingress_lab
    response = send(ingress_lab, case)
    if case.status:
        assert response.status_code == case.status, response.text
    if response.status_code == 401 and "www-authenticate" in response.headers:  # the challenge: never a refusal
        assert response.headers["www-authenticate"].startswith("Bearer realm=")
    elif case.denied:
        assert refused_at_gateway(response), response.text
    elif case.denied is False:
        assert response.status_code != 401 and not refused_at_gateway(response), response.text
    if case.outside:
        assert case.outside not in ingress_lab.repositories(), f"{case.path} wrote into {case.outside}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_policy_check_agrees_with_envoy_through_the_ingress(some_ingress_lab, policy_check, case: IngressCase):
    ingress_lab = some_ingress_lab
    offline = policy_check(ingress_lab.config_file, case.identity, case.method, case.path)
    assert offline == ("DENY" if refused_at_gateway(send(ingress_lab, case)) else "ALLOW")


def test_the_policies_leave_other_hosts_alone_unless_the_gateway_is_dedicated(ingress_lab, dedicated_ingress_lab):
    """Shared: another host's request passes the ingress policies (and finds no route here); dedicated: the ALLOW
    policy refuses whatever it does not list."""
    for lab, status in ((ingress_lab, 404), (dedicated_ingress_lab, 403)):
        with client(lab, "none") as c:
            assert c.get("/v2/", headers={"host": "other.example"}).status_code == status
