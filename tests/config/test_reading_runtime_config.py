"""spec.nodeProxy.runtimeConfig: off unless asked for; every mistake is one line, exit 2, nothing rendered."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from support.configs import minimal


def runtime_config(body: str, *, node_proxy: str = "") -> str:
    """A config whose nodeProxy has `node_proxy` keys and a runtimeConfig of `body` (YAML, indented 6 spaces)."""
    return minimal(f"  nodeProxy:\n{node_proxy}    runtimeConfig:\n{body}")


def test_nothing_is_set_up_on_nodes_unless_asked_for():
    assert not config.DEFAULT.node_proxy.runtime_config.enabled
    assert not config.from_text(minimal(), name="m.yaml").node_proxy.runtime_config.enabled
    off = runtime_config("      containerd: {enabled: false}\n      crio: {}\n")
    assert not config.from_text(off, name="m.yaml").node_proxy.runtime_config.enabled


def test_each_enabled_runtime_gets_its_usual_directory_unless_given_one():
    text = runtime_config("      containerd: {enabled: true}\n"
                          "      crio: {enabled: true, registriesDir: /etc/crio-registries.d}\n")
    rc = config.from_text(text, name="m.yaml").node_proxy.runtime_config
    assert rc.directories == (("containerd", "/etc/containerd/certs.d"), ("crio", "/etc/crio-registries.d"))


def test_node_selector_and_image_are_read():
    text = runtime_config("      containerd: {enabled: true}\n      image: registry.example/busybox:1.36.1\n"
                          "      nodeSelector: {example.com/runtime: containerd-1.7}\n")
    rc = config.from_text(text, name="m.yaml").node_proxy.runtime_config
    assert rc.image == "registry.example/busybox:1.36.1"
    assert rc.node_selector == (("example.com/runtime", "containerd-1.7"),)


BAD = [
    (runtime_config("      containerd: {enabled: true, configPath: etc/containerd/certs.d}\n"),
     "m.yaml:7: spec.nodeProxy.runtimeConfig.containerd.configPath: 'etc/containerd/certs.d' is not an absolute path"),
    (runtime_config("      crio: {enabled: true, registriesDir: /etc/containers/../x}\n"),
     "m.yaml:7: spec.nodeProxy.runtimeConfig.crio.registriesDir: '/etc/containers/../x' is not a plain directory"),
    (runtime_config("      containerd: {enabled: true, configPath: /}\n"),
     "m.yaml:7: spec.nodeProxy.runtimeConfig.containerd.configPath: '/' is not a plain directory"),
    (runtime_config("      containerd: {enabled: true, configPath: '/etc/containerd/certs.d/'}\n"),
     "spec.nodeProxy.runtimeConfig.containerd.configPath: '/etc/containerd/certs.d/' is not a plain directory"),
    (runtime_config("      containerd: {enabled: true}\n", node_proxy="    enabled: false\n"),
     "m.yaml:8: spec.nodeProxy.runtimeConfig.containerd.enabled: writes runtime configuration for the node "
     "proxy's ports, but spec.nodeProxy.enabled is false"),
    (runtime_config("      containerd: {enabled: true, configPath: /etc/rt}\n"
                    "      crio: {enabled: true, registriesDir: /etc/rt/crio}\n"),
     "m.yaml:8: spec.nodeProxy.runtimeConfig.crio.registriesDir: '/etc/rt/crio' overlaps containerd's directory"),
    (runtime_config("      containerd: {enabled: true, configPath: /etc/rt}\n"
                    "      crio: {enabled: true, registriesDir: /etc/rt}\n"),
     "spec.nodeProxy.runtimeConfig.crio.registriesDir: '/etc/rt' overlaps containerd's directory '/etc/rt'"),
    (runtime_config("      containerd: {enabled: yes please}\n"),
     "m.yaml:7: spec.nodeProxy.runtimeConfig.containerd.enabled: expected true or false, got the string 'yes please'"),
    (runtime_config("      containerd: {enabled: true, configpath: /x}\n"),
     "spec.nodeProxy.runtimeConfig.containerd.configpath: unknown key (did you mean 'configPath'?)"),
    (runtime_config("      docker: {enabled: true}\n"),
     "m.yaml:7: spec.nodeProxy.runtimeConfig.docker: unknown key"),
    (runtime_config("      containerd: {enabled: true}\n      nodeSelector: {'bad key!': x}\n"),
     "spec.nodeProxy.runtimeConfig.nodeSelector.bad key!: 'bad key!' is not a label key"),
    (runtime_config("      containerd: {enabled: true}\n      nodeSelector: [a]\n"),
     "m.yaml:8: spec.nodeProxy.runtimeConfig.nodeSelector: expected a mapping of node labels"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[e.split(": ", 2)[-1][:50] for _, e in BAD])
def test_a_mistake_is_one_line_exit_2_and_nothing_rendered(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(text)
    result = CliRunner().invoke(main, ["render", "-c", "m.yaml"])
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("meshreg: error: ") and expected in line, line


def test_a_port_two_registries_share_is_refused_with_runtime_config_on(tmp_path, monkeypatch):
    text = minimal("  nodeProxy:\n    runtimeConfig: {containerd: {enabled: true}}\n  registries:\n"
                   "    - {name: images, port: 5000, default: true}\n    - {name: cache, port: 5000}\n")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(text)
    result = CliRunner().invoke(main, ["render", "-c", "m.yaml"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == ("meshreg: error: m.yaml:9: spec.registries[1].port: 5000 is already the "
                                     "node-proxy port of spec.registries[0]")

