"""An ingress with certificate and token clients on one host renders a Gateway with tls.mode OPTIONAL_MUTUAL. On the
real stack, Istio 1.14's istiod did not know that value, and one such Gateway made it fail to list every Gateway of
the cluster; doctor (and so up) refuses it on an istiod older than 1.22."""

from __future__ import annotations

import copy

import pytest

from meshreg import doctor
from meshreg.doctor.facts import Facts
from meshreg.render import render
from support.fakes import INJECTOR, ISTIOD, FakeCluster
from support.ingress_configs import CLIENTS, ingress_text, load


def facts_for(tmp_path, version: str, text: str) -> Facts:
    fake = FakeCluster()
    fake.put(INJECTOR)
    istiod = copy.deepcopy(ISTIOD)
    istiod["metadata"]["labels"]["app.kubernetes.io/version"] = version
    fake.put(istiod)
    cfg = load(tmp_path, text)
    return Facts(fake, cfg, render(cfg))


@pytest.mark.parametrize("version", ["1.14-maistra-2.3", "1.21.6"])
def test_optional_mutual_on_an_old_istiod_fails_before_up(tmp_path, version):
    facts = facts_for(tmp_path, version, ingress_text(clients=CLIENTS))
    [result] = doctor.run(facts=facts, groups=["ingress"])
    assert result.status == "FAIL"
    assert result.message.startswith("certificate and token clients on one host render a Gateway with tls.mode "
                                     f"OPTIONAL_MUTUAL, which istiod {version} does not know")
    assert "separate hosts" in result.fix
    assert "ingress" in doctor.PREFLIGHT  # so up runs it, and stops


def test_optional_mutual_on_a_current_istiod_goes_on_to_the_gateway_checks(tmp_path):
    facts = facts_for(tmp_path, "1.24.2", ingress_text(clients=CLIENTS))
    results = doctor.run(facts=facts, groups=["ingress"])
    assert not any("OPTIONAL_MUTUAL" in r.message for r in results)


def test_certificate_clients_alone_are_mutual_which_every_istiod_knows(tmp_path):
    only = "".join(f"      - {{name: {n}, method: mtls, repositories: [{n}/]}}\n" for n in ("loader", "mirror"))
    facts = facts_for(tmp_path, "1.14-maistra-2.3", ingress_text(clients=only))
    assert not any("OPTIONAL_MUTUAL" in r.message for r in doctor.run(facts=facts, groups=["ingress"]))
