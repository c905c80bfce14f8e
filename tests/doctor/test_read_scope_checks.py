"""doctor on read scopes: the ingress's mount refusal needs an istiod that takes a header match on `:path` (Istio
1.23.0 to 1.24.3 refuse it), and in-cluster reads are per registry whatever the writers' prefixes."""

from __future__ import annotations

import copy

import pytest

from meshreg import doctor
from meshreg.doctor.facts import Facts
from meshreg.render import render
from support.doctor_helpers import cluster_with_istio, lines, namespace
from support.fakes import ISTIOD
from support.ingress_configs import CLIENTS, ingress_text, load

EVERYTHING = """\
      - {name: loader, method: mtls, repositories: [images/], readRepositories: ["*"]}
"""


def _ingress(tmp_path, version: str, clients: str = CLIENTS) -> list:
    fake = cluster_with_istio()
    istiod = copy.deepcopy(ISTIOD)
    istiod["spec"]["template"]["spec"]["containers"][0]["image"] = f"docker.io/istio/pilot:{version}"
    fake.put(istiod)
    fake.put(namespace("istio-system"))
    cfg = load(tmp_path, ingress_text(clients=clients))
    return doctor.run(facts=Facts(fake, cfg, render(cfg)), groups=["ingress"])


@pytest.mark.parametrize("version", ["1.23.0", "1.24.3"])
def test_an_istiod_that_refuses_the_path_match_fails_the_ingress(tmp_path, version):
    [failed] = lines(_ingress(tmp_path, version), "FAIL")
    assert f"istiod {version} refuses the ingress route that refuses cross-repository mounts" in failed


@pytest.mark.parametrize("version", ["1.22.8", "1.24.4", "1.30.3"])
def test_other_istiods_take_it_and_doctor_says_mounts_are_refused(tmp_path, version):
    results = _ingress(tmp_path, version)
    assert not lines(results, "FAIL")
    assert any("cross-repository mounts are refused at the gateway" in m for m in lines(results, "OK"))


def test_without_restricted_reads_there_is_nothing_to_refuse(tmp_path):
    results = _ingress(tmp_path, "1.24.0", clients=EVERYTHING)
    assert not lines(results, "FAIL") and not any("mounts" in m for m in lines(results))


SCOPED = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: meshreg}
spec:
  readers: [apps/web]
  writers:
    - serviceAccount: team-a/builder
      repositories: [team-a/]
    - serviceAccount: team-b/builder
      repositories: [team-b/]
"""


def test_restricted_readers_and_scoped_writers_get_the_per_registry_read_warning():
    from support.doctor_helpers import check

    warned = lines(check(cluster_with_istio(), "writers", SCOPED), "WARN")
    assert any("reads are per registry" in m for m in warned)


def test_every_reader_alone_gets_no_read_warning():
    from support.doctor_helpers import check

    text = SCOPED.replace("readers: [apps/web]", "readers: ['*']")
    assert not any("reads are per registry" in m for m in lines(check(cluster_with_istio(), "writers", text)))
