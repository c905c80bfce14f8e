"""A second meshreg instance in the same cluster: it leaves the cluster's one KEP-1755 ConfigMap to the first and
still publishes its own addresses."""

from __future__ import annotations

import pytest
import yaml

from meshreg import config
from meshreg.errors import ConfigError
from meshreg.render import render
from support.configs import minimal
from support.validation import MISSING_SCHEMAS, SCHEMAS, errors_in, kubernetes_versions

SECOND = "  namespace: registry-beta\n  nodeProxy: {port: 5001}\n  localRegistryHosting: {publish: false}\n"


def objects(spec: str) -> dict:
    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
            for o in render(config.from_text(minimal(spec), name="m.yaml"))}


def test_an_instance_that_does_not_publish_renders_no_local_registry_hosting():
    assert ("ConfigMap", "kube-public", "local-registry-hosting") not in objects(SECOND)


def test_it_publishes_its_addresses_in_its_own_index_config_map():
    index = objects(SECOND)[("ConfigMap", "kube-public", "meshreg-dev-registries")]
    assert index["metadata"]["labels"]["app.kubernetes.io/instance"] == "dev"
    assert yaml.safe_load(index["data"]["registry"]) == {
        "host": "localhost:5001", "hostFromContainerRuntime": "localhost:5001",
        "hostFromClusterNetwork": "registry.registry-beta.svc.cluster.local:5000",
        "help": config.LocalRegistryHosting.help, "role": "images", "default": True}


def test_publishing_is_the_default():
    objs = objects("")
    assert ("ConfigMap", "kube-public", "local-registry-hosting") in objs
    assert not [k for k in objs if k[1] == "kube-public" and k[2].startswith("meshreg-")]


@pytest.mark.skipif(not SCHEMAS.is_dir(), reason=MISSING_SCHEMAS)
def test_the_render_of_a_second_instance_validates():
    assert errors_in(list(objects(SECOND).values()), kubernetes_versions()) == []


def test_publish_must_be_a_boolean():
    with pytest.raises(ConfigError, match=r"spec.localRegistryHosting.publish: expected true or false, got the "
                                          r"string 'off'"):
        config.from_text(minimal('  localRegistryHosting: {publish: "off"}\n'), name="m.yaml")
