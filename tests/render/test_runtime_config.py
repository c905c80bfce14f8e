"""The runtime config DaemonSet and the files it keeps on nodes: what is rendered, and that it is least privilege."""

from __future__ import annotations

import pytest
import tomllib

from meshreg import config
from meshreg.render import notices, render, runtimeconfig
from support import configs, validation
from support.configs import RUNTIME_CONFIG, minimal
from support.paths import SHARED


def rendered(text: str = RUNTIME_CONFIG) -> dict:
    return configs.rendered(text)


def pod_spec(objs: dict) -> dict:
    return objs[("DaemonSet", runtimeconfig.NAME)]["spec"]["template"]["spec"]


def wanted(objs: dict) -> dict[str, str]:
    """Runtime-relative path -> content, as the kubelet projects the ConfigMap into the pod."""
    data = objs[("ConfigMap", runtimeconfig.NAME)]["data"]
    [volume] = [v for v in pod_spec(objs)["volumes"] if "configMap" in v]
    return {item["path"]: data[item["key"]] for item in volume["configMap"]["items"]}


def test_the_default_render_sets_up_no_node():
    names = {o["metadata"]["name"] for o in render(config.DEFAULT)}
    assert runtimeconfig.NAME not in names


def test_containerd_gets_a_plain_http_hosts_toml_for_each_name_of_each_port():
    files = wanted(rendered())
    for port in (5000, 5001):
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            toml = tomllib.loads(files[f"containerd/{host}/hosts.toml"])
            assert toml == {"server": f"http://{host}",
                            "host": {f"http://{host}": {"capabilities": ["pull", "resolve"]}}}


def test_crio_gets_a_drop_in_marking_each_port_insecure():
    files = wanted(rendered())
    for port in (5000, 5001):
        toml = tomllib.loads(files[f"crio/meshreg-{port}.conf"])
        assert toml == {"registry": [{"location": f"localhost:{port}", "insecure": True},
                                     {"location": f"127.0.0.1:{port}", "insecure": True}]}


def test_an_ipv6_node_proxy_address_is_written_in_brackets():
    text = minimal("  nodeProxy: {hostIP: '::1', runtimeConfig: {containerd: {enabled: true}}}\n")
    assert "containerd/[::1]:5000/hosts.toml" in wanted(rendered(text))


def test_each_container_writes_only_its_runtimes_directory_with_the_shipped_script():
    objs = rendered()
    spec = pod_spec(objs)
    host_paths = {v["name"]: v["hostPath"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths == {"containerd": {"path": "/etc/containerd/certs.d", "type": "DirectoryOrCreate"},
                          "crio": {"path": "/etc/containers/registries.conf.d", "type": "DirectoryOrCreate"}}
    for container in spec["containers"]:
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert set(mounts) == {"wanted", container["name"]} and mounts["wanted"]["readOnly"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MESHREG_TARGET"] == mounts[container["name"]]["mountPath"]
    assert wanted(objs)[runtimeconfig.SCRIPT] == runtimeconfig.script()


def test_the_pods_have_least_privilege_and_stay_out_of_the_mesh():
    objs = rendered()
    spec = pod_spec(objs)
    labels = objs[("DaemonSet", runtimeconfig.NAME)]["spec"]["template"]["metadata"]["labels"]
    assert labels["sidecar.istio.io/inject"] == "false"
    assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] == runtimeconfig.NAME
    assert objs[("ServiceAccount", runtimeconfig.NAME)]["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert "hostNetwork" not in spec and "hostPID" not in spec
    for container in spec["containers"]:
        security = container["securityContext"]
        assert security["capabilities"] == {"drop": ["ALL"]} and security["readOnlyRootFilesystem"]
        assert security["allowPrivilegeEscalation"] is False and "privileged" not in security
        assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]


def test_the_node_selector_narrows_where_it_runs_and_linux_is_always_required():
    assert pod_spec(rendered())["nodeSelector"] == {"kubernetes.io/os": "linux",
                                                    "example.com/pulls-from-localhost": "true"}


def test_a_rollout_starts_the_new_pod_before_the_old_one_stops():
    strategy = rendered()[("DaemonSet", runtimeconfig.NAME)]["spec"]["updateStrategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_a_changed_port_changes_the_pods_so_they_roll():
    def digest(text):
        return rendered(text)[("DaemonSet", runtimeconfig.NAME)]["spec"]["template"]["metadata"]["annotations"]

    assert digest(RUNTIME_CONFIG) != digest(RUNTIME_CONFIG.replace("port: 5001", "port: 5002"))


def test_each_instance_has_its_own_marker():
    one = rendered()
    other = rendered(RUNTIME_CONFIG.replace("{name: dev}", "{name: staging}"))

    def marker(objs):
        return {e["name"]: e.get("value") for e in pod_spec(objs)["containers"][0]["env"]}["MESHREG_MARKER"]

    assert marker(one) == ".meshreg.registry.dev" and marker(other) == ".meshreg.registry.staging"


def test_a_k3s_directory_gets_a_notice_that_k3s_rewrites_it():
    text = minimal("  nodeProxy:\n    runtimeConfig:\n      containerd: {enabled: true, "
                   "configPath: /var/lib/rancher/k3s/agent/etc/containerd/certs.d}\n")
    [hint] = [n for n in notices(config.from_text(text, name="m.yaml")) if "k3s" in n]
    assert "registries.yaml" in hint and "deleted at every start" in hint
    assert not [n for n in notices(config.from_text(RUNTIME_CONFIG, name="m.yaml")) if "k3s" in n]


@pytest.mark.skipif(not (SHARED / "schemas").is_dir(), reason=validation.MISSING_SCHEMAS)
def test_the_render_with_runtime_config_validates_on_every_kubernetes_version():
    objects = render(config.from_text(RUNTIME_CONFIG, name="m.yaml"))
    assert validation.errors_in(objects, validation.kubernetes_versions()) == []
