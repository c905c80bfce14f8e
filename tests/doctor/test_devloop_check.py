"""doctor's `connect` check: which dev-loop setup the config makes, whether the machine doctor runs on is one of
the cluster's nodes, and whether meshreg connect's port is free here (bound and connected to for real)."""

from __future__ import annotations

import socket

import pytest

from meshreg.cluster.localport import Probe
from meshreg.doctor.devloop import judge, this_node
from meshreg.render.devloop import DevLoop
from support.doctor_helpers import check, cluster_with_istio
from support.lab.processes import free_port


def node(name: str, ip: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}}


def config(port: int, *, push_port: int | None = None) -> str:
    pushed = f", port: {push_port}" if push_port else ""
    return ("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: dev}\nspec:\n"
            f"  nodeProxy: {{port: {port}}}\n  pushProxy: {{repositories: [dev/]{pushed}}}\n")


@pytest.fixture
def fake():
    cluster = cluster_with_istio()
    cluster.put(node("remote-1", "192.0.2.201"))  # TEST-NET-1: never an address of this machine
    return cluster


def test_without_a_push_proxy_there_is_no_line(fake):
    assert check(fake, "connect") == []


def test_a_laptop_with_the_same_name_setup_and_a_free_port_is_ok(fake):
    port = free_port()
    [result] = check(fake, "connect", config(port))
    assert (result.status, result.message) == (
        "OK", (f"same name for push and pull, localhost:{port}/dev (push proxy and node proxy share port {port}); "
              f"127.0.0.1:{port} is free here for meshreg connect"))


def test_a_port_taken_on_this_machine_is_named_with_the_one_setting_to_change(fake):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        [result] = check(fake, "connect", config(port))
    assert result.status == "WARN"
    assert result.message.endswith(f"127.0.0.1:{port} is in use on this machine (by meshreg connect, or by another "
                                   "program such as macOS's AirPlay Receiver on 5000)")
    assert result.fix.startswith(f"if it is not meshreg connect: to keep one name for push and pull, set "
                                 f"nodeProxy.port to a free port such as {port + 1}")


def test_a_machine_that_is_a_node_with_the_same_name_setup_is_told_to_split_the_ports(fake):
    fake.put(node("this-machine", "127.0.0.1"))
    port = free_port()
    [result] = check(fake, "connect", config(port))
    assert result.status == "WARN"
    assert result.message.endswith(f"this machine is node this-machine: a hostPort takes 127.0.0.1:{port} here, so "
                                   "meshreg connect cannot listen on it")
    assert result.fix.startswith(f"set pushProxy.port to a port no pod uses as a hostPort (e.g. {port + 1})")


def test_a_machine_that_is_a_node_with_split_ports_is_ok_and_says_what_each_tool_deploys(fake):
    fake.put(node("this-machine", "127.0.0.1"))
    push = free_port()
    [result] = check(fake, "connect", config(5000, push_port=push))
    assert (result.status, result.message) == (
        "OK", (f"split: push localhost:{push}/dev through meshreg connect, pods pull localhost:5000/dev; this machine "
              f"is node this-machine: Tilt deploys localhost:5000/dev, Skaffold deploys localhost:{push}/dev, which "
              "this node pulls through meshreg connect"))


def test_split_ports_on_a_laptop_warn_that_skaffolds_name_cannot_be_pulled(fake):
    push = free_port()
    [result] = check(fake, "connect", config(5000, push_port=push))
    assert result.status == "WARN" and "which nodes cannot pull unless they are this machine" in result.message
    assert result.fix == (f"for one name everywhere, drop pushProxy.port and set nodeProxy.port: {push} (the push "
                          "proxy follows it), then run meshreg up")


def test_an_intercepted_port_means_a_node_even_when_no_address_says_so():
    loop = DevLoop(registry="registry", port=5011, push="localhost:5011/dev", pull="localhost:5010/dev",
                   node_proxy=True, published=True)
    result = judge(loop, node=None, port=Probe("127.0.0.1", 5011, "intercepted"))
    assert result.status == "WARN" and "this machine is a node: a hostPort takes 127.0.0.1:5011 here" in result.message


def test_this_node_is_found_by_a_local_address_or_the_host_name():
    assert this_node([node("remote-1", "192.0.2.201")]) is None
    assert this_node([node("remote-1", "192.0.2.201"), node("me", "127.0.0.1")]) == "me"
    assert this_node([node(socket.gethostname(), "192.0.2.202")]) == socket.gethostname()
