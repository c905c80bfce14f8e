"""What status concludes from what it read: drift, meshed pods, health (meshreg.status.judge)."""

from __future__ import annotations

from meshreg.status.judge import drifted, meshed, object_state, registry_healthy, waypoint_healthy
from meshreg.status.report import Mtls, RegistryEntry, WaypointState


def entry(**changes) -> RegistryEntry:
    fields = dict(name="registry", role="images", default=True, ready=True, replicas="1/1", pods=1, with_sidecar=1,
                  in_ambient=None, mtls=Mtls("STRICT", "STRICT", None, None), writers=(), endpoints=1,
                  addresses=None, problems=(), storage="volume", gc=None, volume=None)
    return RegistryEntry(**{**fields, **changes})


def test_drift_ignores_fields_the_server_adds_and_canonical_quantities():
    rendered = {"spec": {"ports": [{"port": 5000}], "cpu": "0.5"}}
    live = {"spec": {"ports": [{"port": 5000, "protocol": "TCP"}], "cpu": "500m", "clusterIP": "10.0.0.1"}}
    assert drifted(rendered, live) == []


def test_drift_names_the_field_that_differs():
    assert drifted({"spec": {"replicas": 1}}, {"spec": {"replicas": 3}}) == [".spec.replicas"]


def test_an_object_names_at_most_five_drifted_fields():
    rendered = {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"},
                "data": {str(i): "a" for i in range(7)}}
    live = {**rendered, "data": {str(i): "b" for i in range(7)}}
    state = object_state(rendered, live)
    assert (state.state, state.fields) == ("drifted", (".data.0", ".data.1", ".data.2", ".data.3", ".data.4"))
    assert object_state(rendered, None).state == "missing" and object_state(rendered, rendered).state == "present"


def test_in_ambient_mode_a_registry_pod_counts_as_meshed_when_ztunnel_captures_it_sidecar_or_not():
    assert meshed(entry(in_ambient=1, with_sidecar=0)) == (1, "captured by ztunnel")
    assert registry_healthy(entry(in_ambient=1, with_sidecar=0))
    assert not registry_healthy(entry(in_ambient=0, with_sidecar=1))


def test_a_registry_without_pods_is_not_healthy_even_when_its_rollout_says_ready():
    assert not registry_healthy(entry(pods=0, with_sidecar=0))


def test_the_waypoint_is_healthy_only_programmed_and_ready_or_absent():
    programmed = WaypointState(name="waypoint", programmed=True, message="", ready=True, replicas="1/1")
    assert waypoint_healthy(None) and waypoint_healthy(programmed)
    assert not waypoint_healthy(WaypointState(name="waypoint", programmed=False, message="", ready=True,
                                              replicas="1/1"))
