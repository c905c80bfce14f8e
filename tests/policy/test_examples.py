"""The Gitpod set-ups under examples/: who can push where, checked with `meshreg policy check`."""

from __future__ import annotations

import re
import shlex

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from support.paths import ROOT

EXAMPLES = ROOT / "examples"
ALLOW, DENY = 0, 3


def check(example: str, *args: str) -> int:
    config = str(EXAMPLES / example / "meshreg.yaml")
    result = CliRunner().invoke(main, ["policy", "check", "-c", config, *args])
    assert result.exit_code in (ALLOW, DENY), result.output
    return result.exit_code


def documented_checks():
    """Every `meshreg policy check ... # ALLOW|DENY` line in the examples' READMEs."""
    for readme in sorted(EXAMPLES.glob("*/README.md")):
        for line in readme.read_text().splitlines():
            m = re.match(r"meshreg policy check -c examples/([\w-]+)/meshreg.yaml (.+?)\s+# (ALLOW|DENY)", line)
            if m:
                yield pytest.param(m.group(1), shlex.split(m.group(2)), m.group(3), id=f"{m.group(1)}: {m.group(2)}")


@pytest.mark.parametrize(("example", "args", "expected"), list(documented_checks()))
def test_what_each_example_readme_promises_holds(example, args, expected):
    assert check(example, *args) == {"ALLOW": ALLOW, "DENY": DENY}[expected]


def test_in_one_shared_registry_the_builder_can_overwrite_service_images():
    assert check("gitpod-same-registry", "--as", "gitpod/image-builder-mk3", "push", "gitpod/server:1.0") == ALLOW
    assert check("gitpod-same-registry", "--as", "gitpod/server", "push", "gitpod/server:1.0") == DENY


def test_with_split_prefixes_the_platform_only_reads_service_images():
    ex = "gitpod-split-prefixes"
    assert check(ex, "--as", "gitpod/server", "pull", "gitpod/server:1.0") == ALLOW
    assert check(ex, "--as", "gitpod/server", "push", "gitpod/server:1.0") == DENY
    assert check(ex, "--as", "gitpod/airgap-loader", "push", "gitpod/server:1.0") == ALLOW
    assert check(ex, "--as", "gitpod/airgap-loader", "push", "workspace-images/ws-1") == DENY
    assert check(ex, "--as", "gitpod/image-builder-mk3", "POST", "/v2/gitpod%2Fserver/blobs/uploads/") == DENY


@pytest.mark.parametrize("example", ["gitpod-separate-registries", "gitpod-mirror"])
def test_the_builder_cannot_write_service_images_in_a_registry_of_their_own(example):
    assert check(example, "--registry", "service-images", "--as", "gitpod/image-builder-mk3",
                 "push", "gitpod/server:1.0") == DENY
    assert check(example, "--as", "gitpod/image-builder-mk3", "push", "gitpod/server:1.0") == ALLOW  # its own
    for registry in ("service-images", "workspace-images"):
        assert check(example, "--registry", registry, "--as", "node-proxy", "pull", "any/image") == ALLOW
        assert check(example, "--registry", registry, "--as", "gitpod/server", "pull", "any/image") == ALLOW
        assert check(example, "--registry", registry, "--as", "node-proxy", "push", "any/image") == DENY


def test_only_the_publisher_writes_the_readonly_registry():
    ex = "gitpod-separate-registries"
    assert check(ex, "--registry", "service-images", "--as", "gitpod/airgap-loader", "push", "gitpod/server:1") == ALLOW
    assert check(ex, "--registry", "service-images", "--as", "gitpod/server", "push", "gitpod/server:1") == DENY
    # The publisher of service images has no say over workspace images.
    assert check(ex, "--as", "gitpod/airgap-loader", "push", "ws/ws-1") == DENY


def test_nobody_writes_a_mirror():
    for who in ("gitpod/image-builder-mk3", "gitpod/airgap-loader", "gitpod/server"):
        assert check("gitpod-mirror", "--registry", "service-images", "--as", who, "push", "gitpod/server:1") == DENY


def test_an_unknown_registry_is_one_line_and_exit_2():
    result = CliRunner().invoke(main, ["policy", "check", "-c", str(EXAMPLES / "gitpod-mirror" / "meshreg.yaml"),
                                       "--registry", "nope", "--as", "a/b", "pull", "x"])
    assert result.exit_code == 2
    assert "no registry named 'nope' (registries: workspace-images, service-images)" in result.output
