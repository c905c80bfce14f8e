"""What a registry with gc, retention, object storage and replicas renders."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import yaml

from meshreg import config
from meshreg.render import render
from meshreg.render.labels import registry_pods
from support.configs import GC_CONFIG, minimal


def objects(text: str = GC_CONFIG) -> list[dict]:
    return render(config.from_text(text, name="t.yaml"))


def one(objs, kind, name) -> dict:
    [found] = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def names(objs, kind) -> list[str]:
    return [o["metadata"]["name"] for o in objs if o["kind"] == kind]


def test_each_registry_with_gc_gets_a_cronjob_its_account_role_and_code():
    objs = objects()
    assert sorted(names(objs, "CronJob")) == ["service-images-gc", "workspace-images-gc"]
    for kind in ("ServiceAccount", "Role", "RoleBinding", "ConfigMap"):
        assert {"workspace-images-gc", "service-images-gc"} <= set(names(objs, kind))
    assert not [n for n in names(objs, "CronJob") if n.startswith(("cache", "local"))]


def test_the_cronjob_runs_on_schedule_never_twice_at_once():
    spec = one(objects(), "CronJob", "workspace-images-gc")["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == ("0 3 * * 0", "Europe/Berlin", "Forbid")
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 3600


def test_the_gc_pod_goes_where_the_volume_is_and_writes_it_only_in_garbage_collect():
    pod = one(objects(), "CronJob", "workspace-images-gc")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [term] = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"]["meshreg.dev/registry"] == "workspace-images"
    gc, *collectors = pod["containers"]
    assert {"name": "data", "mountPath": "/var/lib/registry", "readOnly": True} in gc["volumeMounts"]
    for collect in collectors:
        assert {"name": "data", "mountPath": "/var/lib/registry"} in collect["volumeMounts"]
        assert collect["image"] == "docker.io/library/registry:2.8.3"
    assert gc["command"] == ["python", "-m", "meshreg.gcjob"]


def test_garbage_collect_is_the_registry_binary_itself_each_way_it_can_run_waiting_on_a_fifo():
    pod = one(objects(), "CronJob", "workspace-images-gc")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert {c["name"]: c["command"] for c in pod["containers"][1:]} == {  # deleteUntagged: true
        "garbage-collect-plan": ["registry", "garbage-collect", "--dry-run", "--delete-untagged",
                                 "/run/meshreg-gc/garbage-collect-plan.yml"],
        "garbage-collect": ["registry", "garbage-collect", "--delete-untagged", "/run/meshreg-gc/garbage-collect.yml"],
        "garbage-collect-tagged": ["registry", "garbage-collect", "/run/meshreg-gc/garbage-collect-tagged.yml"]}
    [prepare] = pod["initContainers"]
    assert prepare["command"] == ["python", "-m", "meshreg.gcjob", "prepare"]
    assert json.loads(one(objects(), "ConfigMap", "workspace-images-gc")["data"]["plan.json"])["collectors"] == [
        "garbage-collect-plan", "garbage-collect", "garbage-collect-tagged"]


def test_the_container_names_are_the_ones_the_job_code_runs():
    from meshreg.gcjob import collect
    from meshreg.render import gc

    assert (gc.PLAN, gc.COLLECT, gc.TAGGED) == (collect.PLAN, collect.COLLECT, collect.TAGGED)


def test_the_coordinator_reaches_the_api_server_around_its_sidecar_and_has_time_to_restore_when_stopped():
    template = one(objects(), "CronJob", "workspace-images-gc")["spec"]["jobTemplate"]["spec"]["template"]
    assert template["metadata"]["annotations"]["traffic.sidecar.istio.io/excludeOutboundPorts"] == "443"
    assert template["spec"]["terminationGracePeriodSeconds"] == 30


def test_on_object_storage_the_gc_pod_has_no_volume_and_takes_the_s3_keys_but_not_the_upload_secret():
    pod = one(objects(), "CronJob", "service-images-gc")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert "affinity" not in pod and "data" not in [v["name"] for v in pod["volumes"]]
    for container in pod["containers"][1:]:  # the AWS SDK's names: REGISTRY_STORAGE_S3_* would add an s3 driver
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}  # to the empty storage's config
        assert env == {"AWS_ACCESS_KEY_ID": {"name": "service-images-s3", "key": "accessKey"},
                       "AWS_SECRET_ACCESS_KEY": {"name": "service-images-s3", "key": "secretKey"}}


def test_the_gc_pods_are_selected_by_neither_the_registry_service_nor_its_policies():
    objs = objects()
    labels = one(objs, "CronJob", "workspace-images-gc")["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
        "labels"]
    selectors = [one(objs, "Service", "workspace-images")["spec"]["selector"]] + [
        p["spec"]["selector"]["matchLabels"] for p in objs
        if p["kind"] in ("AuthorizationPolicy", "PeerAuthentication")]
    assert all(any(labels.get(k) != v for k, v in s.items()) for s in selectors)
    assert labels["sidecar.istio.io/inject"] == "true"  # it deletes through the mesh


def test_the_role_may_only_read_and_patch_its_own_registry_deployment_and_read_pods():
    assert one(objects(), "Role", "workspace-images-gc")["rules"] == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["workspace-images"],
         "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get"]}]


def test_the_job_code_is_meshregs_own_modules_byte_for_byte_and_the_plan_names_the_registry():
    data = one(objects(), "ConfigMap", "workspace-images-gc")["data"]
    package = resources.files("meshreg")
    for key, name in (("meshreg.gcjob.run.py", "gcjob/run.py"), ("meshreg.gcjob.retention.py", "gcjob/retention.py"),
                      ("meshreg.gcjob.kube.py", "gcjob/kube.py"), ("meshreg.gcjob.collect.py", "gcjob/collect.py"),
                      ("meshreg.retention.py", "retention.py"), ("meshreg.__init__.py", "__init__.py")):
        assert data[key] == package.joinpath(name).read_text()
    plan = json.loads(data["plan.json"])
    assert plan["registry"] == "http://workspace-images.registry.svc.cluster.local:5000"
    assert plan["retention"]["rules"][0] == {"repositories": ["workspace/"], "keepNewerThan": "14d"}
    assert (plan["deleteUntagged"], plan["storage"]) == (True, "filesystem")


def test_a_registry_on_s3_has_no_claim_and_a_driver_config_without_credentials():
    objs = objects()
    assert names(objs, "PersistentVolumeClaim") == ["workspace-images-data"]
    storage = yaml.safe_load(one(objs, "ConfigMap", "cache-config")["data"]["config.yml"])["storage"]
    assert storage["s3"] == {"region": "us-east-1", "bucket": "cache", "v4auth": True,
                             "regionendpoint": "http://minio.storage.svc:9000", "secure": False}
    assert storage["redirect"] == {"disable": True} and "filesystem" not in storage
    assert storage["delete"] == {"enabled": False}


def test_replicas_on_s3_share_the_upload_secret_spread_out_and_roll_without_downtime():
    deployment = one(objects(), "Deployment", "service-images")["spec"]
    assert deployment["replicas"] == 3
    assert deployment["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = deployment["template"]["spec"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in pod["containers"][0]["env"]}
    assert env["REGISTRY_HTTP_SECRET"] == "httpSecret"
    [term] = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == deployment["selector"]["matchLabels"]
    assert "data" not in [v["name"] for v in pod["volumes"]]


def test_a_disruption_budget_only_with_several_replicas():
    objs = objects()
    assert names(objs, "PodDisruptionBudget") == ["cache", "service-images"]
    assert one(objs, "PodDisruptionBudget", "cache")["spec"] == {
        "maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/instance": "dev",
                                                          "app.kubernetes.io/name": "registry",
                                                          "meshreg.dev/registry": "cache"}}}


def test_a_service_entry_for_s3_outside_the_cluster_only():
    objs = objects()
    assert sorted(names(objs, "ServiceEntry")) == ["local-s3", "service-images-s3"]
    aws = one(objs, "ServiceEntry", "service-images-s3")["spec"]
    assert aws["hosts"] == ["s3.eu-central-1.amazonaws.com", "service-images.s3.eu-central-1.amazonaws.com"]
    assert aws["ports"] == [{"number": 443, "name": "tls", "protocol": "TLS"}]
    by_ip = one(objs, "ServiceEntry", "local-s3")["spec"]
    assert (by_ip["addresses"], by_ip["resolution"], by_ip["ports"][0]["number"]) == (["10.1.2.3/32"], "NONE", 9000)


def test_redirect_true_lets_clients_download_from_s3():
    storage = yaml.safe_load(one(objects(), "ConfigMap", "local-config")["data"]["config.yml"])["storage"]
    assert storage["redirect"] == {"disable": False} and storage["s3"]["secure"] is True


@pytest.mark.parametrize("replicas", [2, 5])
def test_policies_are_the_same_whatever_the_number_of_replicas(replicas):
    """Policies select pods by label, and every replica carries the same labels: more replicas change nothing."""
    def render_with(n):
        text = minimal(f"""\
  registry:
    storage: {{s3: {{bucket: images, region: us-east-1, credentialsSecret: s3}}}}
    replicas: {n}
  writers: [{{serviceAccount: builds/kaniko, repositories: [team-a/]}}]
""")
        objs = render(config.from_text(text, name="t.yaml"))
        security = [o for o in objs if o["apiVersion"].startswith("security.istio.io/")]
        return security, one(objs, "Deployment", "registry")["spec"]["template"]["metadata"]["labels"]

    one_replica, labels = render_with(1)
    several, several_labels = render_with(replicas)
    assert several == one_replica and several_labels == labels
    cfg = config.from_text(minimal(), name="t.yaml")
    assert all(p["spec"]["selector"]["matchLabels"] == registry_pods(cfg) for p in several
               if p["metadata"]["name"].startswith("registry"))


def test_the_job_code_is_mounted_as_in_the_source_tree_and_run_from_there():
    """The same imports work in the Job and here: meshreg/retention.py beside meshreg/gcjob/, on PYTHONPATH."""
    objs = objects()
    data = one(objs, "ConfigMap", "workspace-images-gc")["data"]
    pod = one(objs, "CronJob", "workspace-images-gc")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [code] = [v["configMap"]["items"] for v in pod["volumes"] if v["name"] == "code"]
    shipped = {item["path"]: data[item["key"]] for item in code}
    package = resources.files("meshreg")
    modules = sorted(f"meshreg/gcjob/{p.name}" for p in package.joinpath("gcjob").iterdir() if p.name.endswith(".py"))
    assert sorted(p for p in shipped if p.endswith(".py")) == sorted(
        ["meshreg/__init__.py", "meshreg/retention.py", *modules])
    assert all(text == package.joinpath(path.removeprefix("meshreg/")).read_text()
               for path, text in shipped.items() if path.endswith(".py"))
    gc = pod["containers"][0]
    [mount] = [m for m in gc["volumeMounts"] if m["name"] == "code"]
    assert {"name": "PYTHONPATH", "value": mount["mountPath"]} in gc["env"]
    assert gc["workingDir"] == mount["mountPath"]
