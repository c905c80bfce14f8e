"""A layer over 100 MB goes up through the sidecar and down through the node proxy without timeouts."""

from __future__ import annotations

import json

import pytest

from support.e2e_cases import WRITER
from support.lab import images
from support.lab.clients import skopeo_copy

LARGE = 100 * 2**20 + 12345


@pytest.fixture(scope="module")
def large_image(tmp_path_factory) -> images.Image:
    return images.build(tmp_path_factory.mktemp("large") / "layout", layer_sizes=(LARGE,))


@pytest.fixture(scope="module")
def pushed(lab, large_image):
    result = skopeo_copy(large_image.ref, f"docker://{lab.sidecar}/builds/large:v1", dest_ident=lab.identity(WRITER))
    assert result.returncode == 0, result.stderr
    return large_image


def test_a_writer_pushes_a_layer_over_100_mb_through_the_sidecar(lab, pushed):
    layer = json.loads(pushed.manifest)["layers"][0]
    assert layer["size"] > 100 * 2**20
    blob = lab.storage / "docker/registry/v2/blobs/sha256" / layer["digest"][7:9] / layer["digest"][7:] / "data"
    assert blob.stat().st_size == layer["size"]


def test_a_layer_over_100_mb_pulls_through_the_node_proxy(lab, pushed, tmp_path):
    result = skopeo_copy(f"docker://{lab.node_proxy}/builds/large:v1", f"oci:{tmp_path / 'out'}:v1")
    assert result.returncode == 0, result.stderr
    layer = json.loads(pushed.manifest)["layers"][0]
    assert (tmp_path / "out/blobs/sha256" / layer["digest"][7:]).stat().st_size == layer["size"]


def test_a_layer_over_100_mb_pulls_through_the_sidecar(lab, pushed, tmp_path):
    result = skopeo_copy(f"docker://{lab.sidecar}/builds/large:v1", f"oci:{tmp_path / 'out'}:v1",
                         src_ident=lab.identity(WRITER))
    assert result.returncode == 0, result.stderr
    index = json.loads((tmp_path / "out/index.json").read_text())
    assert index["manifests"][0]["digest"] == pushed.digest
