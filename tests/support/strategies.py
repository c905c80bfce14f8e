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
GC = "meshreg/registry-gc"  # the retention identity when the config has retention rules
identities = st.one_of(st.builds(lambda ns, sa: f"{ns}/{sa}", st.sampled_from(NAMES), st.sampled_from(NAMES)),
                       st.just(GC))
writer_ids = st.builds(lambda ns, sa: f"{ns}/{sa}", st.sampled_from(NAMES), st.sampled_from(NAMES))
prefix_lists = st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=2, unique=True).map(lambda p: tuple(sorted(p)))
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def configs(draw):
    ids = draw(st.lists(writer_ids, unique=True, max_size=4))
    writers = tuple(Writer(service_account=i, delete=draw(st.booleans()),
                           repositories=draw(st.one_of(st.just(("*",)), prefix_lists))) for i in ids)
    readers = draw(st.one_of(st.just(("*",)), st.lists(writer_ids, unique=True, max_size=3).map(tuple)))
    retention = draw(st.one_of(st.none(), st.just(("*",)), prefix_lists))
    return make(draw(st.sampled_from(["cluster.local", "example.org"])), readers, writers, retention)


def make(trust_domain, readers, writers, retention=None, *, mesh=None):
    """A config through the public YAML interface (JSON is YAML); `retention`: prefixes with a retention rule;
    `mesh`: spec.mesh ("ambient"), or None for the default."""
    registry: dict = {"deleteEnabled": True}
    if retention:
        registry["gc"] = {"schedule": "0 3 * * 0"}
        registry["retention"] = {"rules": [{"repositories": list(retention), "keepNewest": 3}]}
    spec = {"trustDomain": trust_domain, "readers": list(readers), "registry": registry,
            "writers": [{"serviceAccount": w.service_account, "repositories": list(w.repositories),
                         "delete": w.delete} for w in writers]}
    if mesh:
        spec["mesh"] = mesh
    doc = {"apiVersion": "meshreg.dev/v1alpha1", "kind": "MeshRegistry", "metadata": {"name": "t"}, "spec": spec}
    return config.from_text(json.dumps(doc), name="random.yaml")


def writers(cfg):
    """Who the policies must let write, rebuilt from what make() was given, as docs/gc.md documents it (not
    with Config.writers_of, which the renderer itself uses): the writers and, with a retention rule, the retention
    identity GC, DELETE only, in that rule's prefixes."""
    expected = tuple(cfg.writers)
    if cfg.registry.retention:
        [rule] = cfg.registry.retention.rules  # make() writes one rule, with the drawn prefixes
        expected += (Writer(GC, repositories=rule.repositories, delete=True, push=False),)
    return expected


def covers(writer: Writer, repo: str) -> bool:
    return not writer.scoped or any((repo + "/").startswith(p) for p in writer.repositories)
