"""examples/kind: the files the laptop story uses agree with each other and with what meshreg renders."""

from __future__ import annotations

import re

import yaml

from meshreg import config
from meshreg.render import runtimeconfig
from support import validation
from support.paths import ROOT

KIND = ROOT / "examples" / "kind"


def load(name: str):
    return list(yaml.safe_load_all((KIND / name).read_text()))


def example() -> config.Config:
    return config.from_text((KIND / "meshreg.yaml").read_text(), name="examples/kind/meshreg.yaml")


def test_the_kind_config_is_a_plain_two_node_cluster_without_port_mappings_or_containerd_patches():
    [cluster] = load("kind.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("kind.x-k8s.io/v1alpha4", "Cluster")
    assert [n["role"] for n in cluster["nodes"]] == ["control-plane", "worker"]
    assert "containerdConfigPatches" not in cluster  # README.md: not needed, and risky on older node images
    assert not any("extraPortMappings" in n for n in cluster["nodes"])  # README.md: pulls stay inside the nodes


def test_k3ds_registries_yaml_declares_plain_http_for_every_name_of_every_port_the_example_serves():
    [k3d] = load("k3d.yaml")
    assert (k3d["apiVersion"], k3d["kind"]) == ("k3d.io/v1alpha5", "Simple")
    mirrors = yaml.safe_load(k3d["registries"]["config"])["mirrors"]
    cfg = example()
    wanted = {host for reg in cfg.registries for host in runtimeconfig.hosts(cfg, reg.port)}
    assert mirrors == {host: {"endpoint": [f"http://{host}"]} for host in wanted}


def test_the_push_pod_is_a_writer_of_the_example_and_pushes_to_its_service():
    namespace, account, pod = load("push.yaml")
    cfg = example()
    identity = f"{pod['metadata']['namespace']}/{pod['spec']['serviceAccountName']}"
    assert identity in [w.service_account for w in cfg.writers_of(cfg.registry)]
    assert (account["metadata"]["namespace"], account["metadata"]["name"]) == tuple(identity.split("/"))
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"  # the identity comes from the sidecar
    destination = pod["spec"]["containers"][0]["args"][-1]
    assert destination.startswith(f"docker://{cfg.service_host()}/")


def test_the_push_manifests_validate_on_every_kubernetes_version():
    assert validation.errors_in(load("push.yaml"), validation.kubernetes_versions()) == []


def test_the_pod_the_readme_runs_pulls_what_the_push_pod_pushed_through_the_node_proxy():
    readme = (KIND / "README.md").read_text()
    pushed = load("push.yaml")[2]["spec"]["containers"][0]["args"][-1].split("/", 3)[-1]
    pulled = re.search(r"kubectl run hello --image=(\S+)", readme).group(1)
    assert pulled == f"localhost:{example().node_proxy.port}/{pushed}"


def test_every_file_the_readme_names_exists():
    named = set(re.findall(r"examples/kind/([\w.-]+)", (KIND / "README.md").read_text()))
    assert named and all((KIND / name).is_file() for name in named), named
