"""What `meshreg connect` tells people, and what it says when its port is taken: for each dev-loop setup the
config makes (same name for push and pull, or split ports for a machine that is a node)."""

from __future__ import annotations

import socket

import pytest

from meshreg import config
from meshreg.cli.output.connect import text
from meshreg.cluster.localport import listen, probe
from meshreg.errors import UsageError
from meshreg.operations.connect import Forwarding
from meshreg.render.devloop import devloop
from support.configs import minimal


def _banner(loop, _target=None, *, local: str, pod: str) -> str:
    """The banner connect prints for `loop`, listening on `local`, forwarding to `pod`."""
    return text(Forwarding(local=local, namespace="meshreg-push", pod=pod, port=5001, registry=loop.registry,
                           repositories=("dev/",), pull=loop.pull, node_proxy=loop.node_proxy, loop=loop))


def loop_of(text: str):
    cfg = config.from_text(minimal(text), name="m.yaml")
    return devloop(cfg, cfg.registry)


def test_a_registry_without_a_push_proxy_has_no_dev_loop():
    assert loop_of("") is None


def test_same_name_setup_one_setting_moves_push_and_pull_together():
    loop = loop_of("  nodeProxy: {port: 5001}\n  pushProxy: {repositories: [dev/]}\n")
    assert (loop.setup, loop.port, loop.push, loop.pull) == ("same name", 5001, "localhost:5001/dev",
                                                              "localhost:5001/dev")
    assert _banner(loop, local="localhost:5001", pod="p").splitlines() == [
        "forwarding localhost:5001 -> pod meshreg-push/p:5001 (registry registry: pushes to localhost:5001/dev/...)",
        "  docker:   docker push localhost:5001/dev/IMAGE:TAG",
        "  skaffold: skaffold run --default-repo=localhost:5001/dev",
        "  tilt:     nothing to set: it reads kube-public/local-registry-hosting",
        "  pull in pod specs: localhost:5001/dev/...",
        "Ctrl-C to stop."]


def test_split_setup_says_where_skaffolds_pushed_name_can_be_pulled():
    loop = loop_of("  pushProxy: {repositories: [dev/], port: 5001}\n")
    assert (loop.setup, loop.push, loop.pull) == ("split", "localhost:5001/dev", "localhost:5000/dev")
    lines = _banner(loop, local="localhost:5001", pod="p").splitlines()
    assert lines[2] == ("  skaffold: skaffold run --default-repo=localhost:5001/dev   (pods then pull "
                        "localhost:5001/dev/...: only on a node that reaches this meshreg connect)")
    assert lines[4] == "  pull in pod specs: localhost:5000/dev/..."


def test_on_another_port_tilt_is_told_both_names_since_the_published_host_is_elsewhere():
    loop = loop_of("  pushProxy: {repositories: [dev/]}\n")
    lines = _banner(loop, local="localhost:5002", pod="p").splitlines()
    assert lines[1] == "  docker:   docker push localhost:5002/dev/IMAGE:TAG"
    assert lines[3] == "  tilt:     default_registry('localhost:5002/dev', host_from_cluster='localhost:5000/dev')"


def test_a_second_instance_that_does_not_publish_tells_tilt_both_names():
    loop = loop_of("  pushProxy: {repositories: [dev/]}\n  localRegistryHosting: {publish: false}\n")
    lines = _banner(loop, local="localhost:5000", pod="p").splitlines()
    assert lines[3] == "  tilt:     default_registry('localhost:5000/dev', host_from_cluster='localhost:5000/dev')"


def test_a_taken_default_port_of_the_same_name_setup_says_which_one_setting_to_change():
    loop = loop_of("  pushProxy: {repositories: [dev/]}\n")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(UsageError) as e:
            listen("127.0.0.1", port, hint=loop.taken_hint(), node_hint=loop.intercepted_hint())
    assert str(e.value) == (
        f"127.0.0.1:{port} is already in use (another meshreg connect, a local registry, or on macOS the AirPlay "
        "Receiver on 5000); to keep one name for push and pull, set nodeProxy.port to a free port such as 5001 and "
        "run meshreg up (the push proxy follows it), or pick another port with --port")


def test_the_intercepted_hint_names_the_split_setup():
    assert loop_of("  pushProxy: {repositories: [dev/]}\n").intercepted_hint() == (
        "set pushProxy.port to a port no pod uses as a hostPort (e.g. 5001) and run meshreg up: pods on this node "
        "then pull through meshreg connect too (docs/pushing.md, a machine that is a node)")


def test_a_free_port_is_reached_by_its_own_listener_and_a_taken_one_is_named():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert probe("127.0.0.1", port).state == "taken"
    assert probe("127.0.0.1", port).state == "free"
    sock = listen("127.0.0.1", port)
    sock.close()
