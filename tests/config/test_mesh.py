"""`spec.mesh`: sidecar (the default) or ambient, and what ambient mode refuses, each as one line."""

from __future__ import annotations

import pytest

from meshreg import config
from meshreg.errors import ConfigError
from support.configs import AMBIENT, minimal

SEVERAL = """\
  mesh: ambient
  registries:
    - {name: images, port: 5000, default: true, writers: [{serviceAccount: ci/builder}]}
    - {name: %s, port: 5001, role: readonly, publisher: %s}
"""


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        config.from_text(text, name="meshreg.yaml")
    assert "\n" not in str(e.value) and e.value.exit_code == 2
    return str(e.value)


def test_the_mesh_is_sidecar_unless_the_config_says_ambient():
    assert config.DEFAULT.mesh == "sidecar"
    assert config.from_text(minimal(), name="m.yaml").mesh == "sidecar"
    assert config.from_text(AMBIENT, name="m.yaml").mesh == "ambient"


def test_an_unknown_mesh_mode_names_the_line_and_the_choices():
    assert error_of(minimal("  mesh: istio\n")) == (
        "meshreg.yaml:5: spec.mesh: 'istio' is not a mesh mode (expected one of: sidecar, ambient)")


def test_a_mesh_mode_that_yaml_reads_as_a_boolean_is_refused():
    assert "spec.mesh: expected a string, got the boolean true" in error_of(minimal("  mesh: yes\n"))


@pytest.mark.parametrize("revision", ["1-22", "1-23-4", "istio-1-21-2"])
def test_ambient_refuses_a_revision_that_names_an_istio_older_than_1_24(revision):
    message = error_of(minimal(f"  mesh: ambient\n  istioRevision: {revision}\n"))
    assert message.startswith("meshreg.yaml:6: spec.istioRevision: ")
    assert "needs Istio 1.24 or newer (istio.io/ingress-use-waypoint" in message


@pytest.mark.parametrize("revision", ["1-24", "1-30-1", "istio-1-25-2", "canary", "stable", "prod-1"])
def test_ambient_accepts_newer_revisions_and_revision_tags(revision):
    cfg = config.from_text(minimal(f"  mesh: ambient\n  istioRevision: {revision}\n"), name="m.yaml")
    assert cfg.istio_revision == revision


def test_sidecar_mode_keeps_accepting_old_revisions():
    assert config.from_text(minimal("  istioRevision: 1-21\n"), name="m.yaml").istio_revision == "1-21"


def test_ambient_refuses_the_waypoint_as_a_writer():
    text = minimal("  mesh: ambient\n  writers:\n    - serviceAccount: meshreg/waypoint\n")
    assert error_of(text) == ("meshreg.yaml:7: spec.writers[0].serviceAccount: 'meshreg/waypoint' is the waypoint, "
                              "which forwards every client's requests: it can never be a writer")


def test_ambient_refuses_the_waypoint_as_a_publisher():
    message = error_of(minimal(SEVERAL % ("service-images", "meshreg/waypoint")))
    assert "spec.registries[1].publisher: 'meshreg/waypoint' is the waypoint: it can never publish" in message


def test_ambient_refuses_a_registry_named_like_the_waypoint():
    message = error_of(minimal(SEVERAL % ("waypoint", "ci/loader")))
    assert message.startswith("meshreg.yaml:8: spec.registries[1].name: 'waypoint' is the waypoint's name")


def test_a_registry_named_waypoint_is_fine_with_sidecars():
    text = minimal(SEVERAL.replace("  mesh: ambient\n", "") % ("waypoint", "ci/loader"))
    assert [r.name for r in config.from_text(text, name="m.yaml").registries] == ["images", "waypoint"]


def test_ambient_refuses_a_mirror_which_needs_its_own_sidecar():
    text = minimal(SEVERAL % ("service", "ci/loader")).replace(
        "role: readonly, publisher: ci/loader", "role: mirror, mirror: {upstream: 'https://ghcr.io'}")
    message = error_of(text)
    assert message.startswith("meshreg.yaml:8: spec.registries[1].role: a mirror reaches its upstream through its "
                              "own sidecar")


def test_ambient_refuses_gc_and_retention_whose_job_needs_a_sidecar():
    gc = minimal("  mesh: ambient\n  registry:\n    deleteEnabled: true\n    gc: {schedule: '0 3 * * 0'}\n")
    assert error_of(gc).startswith("meshreg.yaml:8: spec.registry.gc: the gc job deletes through the mesh from a pod "
                                   "with a sidecar")
    several = minimal(SEVERAL % ("service", "ci/loader")).replace(
        "role: readonly, publisher: ci/loader",
        "role: readonly, publisher: ci/loader, deleteEnabled: true, gc: {schedule: '@daily'}, "
        "retention: {rules: [{keepNewest: 3}]}")
    assert error_of(several).startswith("meshreg.yaml:8: spec.registries[1].gc: the gc job deletes through the mesh")
