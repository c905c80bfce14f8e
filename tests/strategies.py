"""Random configs for the security invariants (hypothesis), shared by the sidecar and ambient invariant tests."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from meshreg import config
from meshreg.config import Writer

NAMES = ["a", "b", "team-a", "team-ab", "ci"]
PREFIXES = ["team-a/", "team-ab/", "team-a/app/", "b/", "shared/base/"]
WRITES = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
TRICKS = ["/v2/{r}/blobs/uploads/", "/v2/{r}/manifests/x", "/v2/x/../{r}/blobs/uploads/",
          "/v2/{e}/blobs/uploads/", "/v2//{r}/manifests/x", "/v2/{r}/%2e%2e/{r}/manifests/x"]
identities = st.builds(lambda ns, sa: f"{ns}/{sa}", st.sampled_from(NAMES), st.sampled_from(NAMES))


@st.composite
def configs(draw):
    ids = draw(st.lists(identities, unique=True, max_size=4))
    writers = tuple(Writer(service_account=i, delete=draw(st.booleans()),
                           repositories=draw(st.one_of(st.just(("*",)), st.lists(
                               st.sampled_from(PREFIXES), min_size=1, max_size=2, unique=True).map(
                               lambda p: tuple(sorted(p)))))) for i in ids)
    readers = draw(st.one_of(st.just(("*",)), st.lists(identities, unique=True, max_size=3).map(tuple)))
    return make(draw(st.sampled_from(["cluster.local", "example.org"])), readers, writers)


def make(trust_domain, readers, writers):
    """A config through the public YAML interface (JSON is YAML)."""
    spec = {"trustDomain": trust_domain, "readers": list(readers), "registry": {"deleteEnabled": True},
            "writers": [{"serviceAccount": w.service_account, "repositories": list(w.repositories),
                         "delete": w.delete} for w in writers]}
    doc = {"apiVersion": "meshreg.dev/v1alpha1", "kind": "MeshRegistry", "metadata": {"name": "t"}, "spec": spec}
    return config.from_text(json.dumps(doc), name="random.yaml")


def covers(writer: Writer, repo: str) -> bool:
    return not writer.scoped or any((repo + "/").startswith(p) for p in writer.repositories)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
