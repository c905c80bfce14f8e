"""KEP-1755 for the dev loop: what meshreg publishes in kube-public/local-registry-hosting makes the names Tilt and
Skaffold derive from it land inside the push proxy's scope, and pods pull the same path from the node proxy.

Tilt and Skaffold name images the way `tilt_name` and `skaffold_name` below do (Tilt v0.37.6
internal/container/registry.go replaceRegistry; Skaffold v2.24.0 pkg/skaffold/docker/default_repo.go replace);
tests/realstack/test_devloop.py runs the real binaries against what is published here."""

from __future__ import annotations

import re

import pytest
import yaml
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from meshreg.errors import ConfigError
from meshreg.render import hosting, render
from support.configs import minimal

SCOPED = minimal("  pushProxy: {repositories: [dev/], port: 5001}\n")
SAME_PORT = minimal("  nodeProxy: {port: 5001}\n  pushProxy: {repositories: [dev/]}\n")


def published(text: str) -> dict:
    [cm] = [o for o in render(config.from_text(text, name="m.yaml"))
            if o["metadata"]["name"] == "local-registry-hosting"]
    return yaml.safe_load(cm["data"]["localRegistryHosting.v1"])


def tilt_name(image: str, host: str) -> str:
    """Tilt: `<host>/<familiar name with / : @ replaced by _>` (dots kept), unchanged if already under host."""
    return image if image.startswith(host + "/") else f"{host}/{re.sub(r'[/:@]', '_', image)}"


def skaffold_name(image: str, repo: str) -> str:
    """Skaffold (single-level repos): `<repo>/<image with / . _ : @ replaced by _>`, at most 255 characters."""
    return image if image.startswith(repo) else f"{repo}/{re.sub(r'[/._:@]', '_', image)}"[:255]


def check(text: str, tmp_path, *args: str) -> int:
    (tmp_path / "meshreg.yaml").write_text(text)
    result = CliRunner().invoke(main, ["policy", "check", "-c", str(tmp_path / "meshreg.yaml"), *args])
    assert result.exit_code in (0, 3), result.output
    return result.exit_code


def test_with_a_scoped_push_proxy_host_and_pull_name_carry_its_prefix():
    addresses = published(SCOPED)
    assert addresses["host"] == "localhost:5001/dev"
    assert addresses["hostFromContainerRuntime"] == "localhost:5000/dev"
    assert addresses["hostFromClusterNetwork"] == "registry.meshreg.svc.cluster.local:5000"
    assert addresses["help"].endswith("run `meshreg connect` and push to localhost:5001/dev.")


def test_one_setting_moves_push_and_pull_to_the_same_port():
    addresses = published(SAME_PORT)
    assert addresses["host"] == addresses["hostFromContainerRuntime"] == "localhost:5001/dev"


def test_a_push_proxy_for_every_repository_publishes_no_path():
    addresses = published(minimal("  pushProxy: {repositories: ['*'], port: 5001}\n"))
    assert (addresses["host"], addresses["hostFromContainerRuntime"]) == ("localhost:5001", "localhost:5000")


def test_with_several_prefixes_the_first_alphabetically_is_published():
    addresses = published(minimal("  pushProxy: {repositories: [team-b/apps/, dev/], port: 5001}\n"))
    assert addresses["host"] == "localhost:5001/dev"


def test_an_explicit_host_with_a_path_is_published_and_pods_pull_the_same_path():
    addresses = published(SCOPED + "  localRegistryHosting: {host: 'localhost:5001/team-b/apps'}\n")
    assert addresses["host"] == "localhost:5001/team-b/apps"
    assert addresses["hostFromContainerRuntime"] == "localhost:5000/team-b/apps"


def test_without_a_push_proxy_nothing_changes():
    addresses = published(minimal())
    assert (addresses["host"], addresses["hostFromContainerRuntime"]) == ("localhost:5000", "localhost:5000")


@pytest.mark.parametrize("host", ["localhost:5001/dev", "127.0.0.1:5001/team-a/dev", "reg.example.com:443",
                                  "[::1]:5001/dev", "localhost:5000"])
def test_host_may_carry_a_repository_path(host):
    cfg = config.from_text(minimal(f"  localRegistryHosting: {{host: '{host}'}}\n"), name="m.yaml")
    assert cfg.local_registry_hosting.host == host


@pytest.mark.parametrize(("host", "why"), [
    ("localhost", "is not HOST:PORT with an optional repository path"),
    ("localhost:5001/Dev", "'Dev' is not a repository path"),
    ("localhost:5001/dev/", "'dev/' is not a repository path"),
    ("localhost:99999/dev", "is not HOST:PORT"),
    ("http://localhost:5001", "is not HOST:PORT"),
    ("local_host:5001", "is not HOST:PORT"),
])
def test_a_bad_host_is_refused_naming_the_field(host, why):
    with pytest.raises(ConfigError, match=rf"^m\.yaml:\d+: spec\.localRegistryHosting\.host: .*{re.escape(why)}"):
        config.from_text(minimal(f"  localRegistryHosting: {{host: '{host}'}}\n"), name="m.yaml")


@pytest.mark.parametrize("image", ["app", "example.com/team/app", "team/app", "gcr.io/proj/app:v1"])
@pytest.mark.parametrize("text", [SCOPED, SAME_PORT], ids=["split-ports", "same-port"])
def test_names_tilt_derives_from_the_published_host_are_inside_the_push_proxys_scope(image, text, tmp_path):
    addresses = published(text)
    pushed = tilt_name(image.split(":")[0], addresses["host"]) + ":tilt-build-1765000000"
    pulled = tilt_name(image.split(":")[0], addresses["hostFromContainerRuntime"])
    repository = pushed.split("/", 1)[1]
    assert check(text, tmp_path, "--as", "push-proxy", "push", repository) == 0
    assert check(text, tmp_path, "--as", "node-proxy", "pull", repository) == 0
    assert pulled.split("/", 1)[1] == repository.rsplit(":", 1)[0]  # the node proxy serves what was pushed


@pytest.mark.parametrize("image", ["app", "example.com/team/app", "team/app"])
def test_names_skaffold_derives_from_the_published_host_are_inside_the_push_proxys_scope(image, tmp_path):
    repo = published(SCOPED)["host"]
    pushed = skaffold_name(image, repo) + ":v1"
    assert check(SCOPED, tmp_path, "--as", "push-proxy", "push", pushed.split("/", 1)[1]) == 0


def test_the_names_of_the_issue_are_the_ones_checked():
    assert tilt_name("example.com/team/app", "localhost:5001/dev") == "localhost:5001/dev/example.com_team_app"
    assert skaffold_name("example.com/team/app", "localhost:5001/dev") == "localhost:5001/dev/example_com_team_app"


def test_a_name_without_the_prefix_is_what_the_push_proxy_refuses(tmp_path):
    assert check(SCOPED, tmp_path, "--as", "push-proxy", "push", "example.com_team_app:tilt-1") == 3


def test_the_index_config_map_publishes_the_same_addresses():
    cfg = config.from_text(SCOPED, name="m.yaml")
    index = hosting.index_config_map(cfg)["data"]["registry"]
    assert yaml.safe_load(index)["host"] == "localhost:5001/dev"
