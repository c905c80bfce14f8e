"""Every pod meshreg renders pulls in a way that works airgapped and with preloaded images (an explicit
IfNotPresent, the gateway-injected `image: auto` proxies included, which the API server would otherwise default to
Always and Istio's injector would keep), takes the config's imagePullSecrets, and runs where the config places it."""

from __future__ import annotations

import pathlib

import pytest

from meshreg import config
from meshreg.render import render
from support.configs import minimal
from support.paths import ROOT
from support.validation import errors_in, kubernetes_versions

EXAMPLES = sorted(ROOT.glob("examples/*/meshreg.yaml"))
EVERYTHING = minimal("""\
  imagePullSecrets: [{name: mirror-pull}]
  nodeProxy:
    hostIP: 127.0.0.1
    runtimeConfig: {containerd: {enabled: true}, image: mirror.example/busybox:1.36.1}
  registries:
    - name: images
      port: 5000
      default: true
      deleteEnabled: true
      image: mirror.example/registry:2.8.3
      nodeSelector: {pool: registry}
      tolerations: [{key: dedicated, operator: Equal, value: registry, effect: NoSchedule}]
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 50
              podAffinityTerm: {labelSelector: {matchLabels: {app: noisy}}, topologyKey: kubernetes.io/hostname}
      writers: [{serviceAccount: builds/kaniko}]
      pushProxy:
        repositories: [dev/]
        nodeSelector: {pool: edge}
        tolerations: [{key: edge, operator: Exists}]
      gc:
        schedule: "0 3 * * 0"
        image: mirror.example/python:3.13-alpine
        affinity:
          nodeAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms: [{matchExpressions: [{key: example.com/gc, operator: Exists}]}]
      retention: {rules: [{keepNewest: 5}]}
    - name: cache
      port: 5001
      role: mirror
      mirror: {upstream: https://ghcr.io}
      storage:
        s3: {bucket: cache, region: eu-west-1, credentialsSecret: cache-s3}
      replicas: 2
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - {labelSelector: {matchLabels: {app: other}}, topologyKey: topology.kubernetes.io/zone}
""")


def pod_templates(objects: list[dict]) -> dict[str, dict]:
    """`Kind/namespace/name` -> the pod template of every workload."""
    out = {}
    for obj in objects:
        spec = obj.get("spec") or {}
        template = spec.get("template") or ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
        if template:
            meta = obj["metadata"]
            out[f"{obj['kind']}/{meta.get('namespace')}/{meta['name']}"] = template
    return out


def everything() -> dict[str, dict]:
    return pod_templates(render(config.from_text(EVERYTHING, name="m.yaml")))


CONFIGS = [(None, "the built-in default"), *((p.read_text(), str(p.relative_to(ROOT))) for p in EXAMPLES),
           (EVERYTHING, "every kind of pod")]


@pytest.mark.parametrize(("text", "name"), CONFIGS, ids=[n for _, n in CONFIGS])
def test_every_container_says_if_not_present(text, name):
    cfg = config.DEFAULT if text is None else config.from_text(text, name=name)
    templates = pod_templates(render(cfg))
    assert templates
    policies = {f"{where}/{c['name']}": c.get("imagePullPolicy")
                for where, t in templates.items() for c in t["spec"]["containers"]}
    assert set(policies.values()) == {"IfNotPresent"}, policies


def test_the_gateway_injected_proxies_say_if_not_present_for_their_auto_image():
    templates = everything()
    for where in ("DaemonSet/meshreg/node-proxy", "Deployment/meshreg-push-images/push-proxy"):
        [proxy] = templates[where]["spec"]["containers"]
        assert (proxy["image"], proxy["imagePullPolicy"]) == ("auto", "IfNotPresent")


def test_every_pod_takes_the_image_pull_secrets():
    templates = everything()
    assert len(templates) == 6  # two registries, node proxy, runtime config, push proxy, gc
    for where, template in templates.items():
        assert template["spec"]["imagePullSecrets"] == [{"name": "mirror-pull"}], where
    plain = pod_templates(render(config.DEFAULT))
    assert all("imagePullSecrets" not in t["spec"] for t in plain.values())


def test_every_image_is_the_configured_one():
    images = {where: {c["image"] for c in t["spec"]["containers"]} for where, t in everything().items()}
    assert images["Deployment/meshreg/images"] == {"mirror.example/registry:2.8.3"}
    assert images["CronJob/meshreg/images-gc"] == {"mirror.example/python:3.13-alpine",
                                                   "mirror.example/registry:2.8.3"}
    assert images["DaemonSet/meshreg/node-proxy-runtime-config"] == {"mirror.example/busybox:1.36.1"}


def test_a_registry_runs_where_it_is_placed():
    spec = everything()["Deployment/meshreg/images"]["spec"]
    assert spec["nodeSelector"] == {"pool": "registry"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "registry",
                                    "effect": "NoSchedule"}]
    [term] = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"] == {"matchLabels": {"app": "noisy"}}


def test_replicas_on_object_storage_keep_spreading_beside_the_configured_affinity():
    anti = everything()["Deployment/meshreg/cache"]["spec"]["affinity"]["podAntiAffinity"]
    [spread] = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert spread["podAffinityTerm"]["labelSelector"]["matchLabels"]["meshreg.dev/registry"] == "cache"
    [zone] = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert zone["topologyKey"] == "topology.kubernetes.io/zone"


def test_the_push_proxy_runs_where_it_is_placed():
    spec = everything()["Deployment/meshreg-push-images/push-proxy"]["spec"]
    assert spec["nodeSelector"] == {"pool": "edge"}
    assert spec["tolerations"] == [{"key": "edge", "operator": "Exists"}]
    assert "affinity" not in spec


def test_gc_follows_its_registrys_volume_and_takes_the_registrys_place_and_its_own_affinity():
    spec = everything()["CronJob/meshreg/images-gc"]["spec"]
    assert spec["nodeSelector"] == {"pool": "registry"}  # inherited
    assert spec["tolerations"][0]["key"] == "dedicated"  # inherited: it must run on the registry's node
    [follow] = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert follow["labelSelector"]["matchLabels"]["meshreg.dev/registry"] == "images"
    [terms] = [spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]]
    assert terms == [{"matchExpressions": [{"key": "example.com/gc", "operator": "Exists"}]}]


def test_the_node_proxy_and_the_runtime_config_still_run_on_every_node():
    templates = everything()
    for where in ("DaemonSet/meshreg/node-proxy", "DaemonSet/meshreg/node-proxy-runtime-config"):
        assert templates[where]["spec"]["tolerations"] == [{"operator": "Exists"}], where
        assert "affinity" not in templates[where]["spec"]


def test_what_is_rendered_is_valid_kubernetes():
    objects = render(config.from_text(EVERYTHING, name="m.yaml"))
    workloads = [o for o in objects if o["kind"] in ("Deployment", "DaemonSet", "CronJob")]
    versions = kubernetes_versions()
    assert errors_in(workloads, [versions[0], versions[-1]]) == []


def test_no_example_places_or_pulls_anything_new():
    """Configs without the new keys render no scheduling or pull-secret fields (their goldens hold the rest)."""
    for path in EXAMPLES:
        for where, template in pod_templates(render(config.load(str(path)))).items():
            spec = template["spec"]
            assert "imagePullSecrets" not in spec, (pathlib.Path(path).parent.name, where)
            assert "nodeSelector" not in spec or where.startswith("DaemonSet"), (path, where)
