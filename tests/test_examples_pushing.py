"""examples/builders, examples/skaffold, examples/tilt: every manifest validates, and every push they make is one
the example config allows for the identity that makes it (checked with `meshreg policy check`)."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import yaml
from click.testing import CliRunner
from packaging.version import Version

from meshreg import config
from meshreg.cli import main
from meshreg.render import hosting
from support.paths import ROOT
from support.validation import kubernetes_versions, validate_kubernetes

EXAMPLES = ROOT / "examples"
CONFIG = EXAMPLES / "builders" / "meshreg.yaml"
CFG = config.load(str(CONFIG))
SERVICE = CFG.service_host()  # registry.meshreg.svc.cluster.local:5000
# appArmorProfile (rootless BuildKit) is a field since 1.30; native sidecars need 1.29 or newer anyway. The README
# says so: test_the_builders_readme_claims_the_versions_validated_here checks that it does.
OLDEST = "1.30"
VERSIONS = [v for v in kubernetes_versions() if Version(v) >= Version(OLDEST)]
MANIFESTS = sorted([*(EXAMPLES / "builders").glob("*.yaml"), *(EXAMPLES / "skaffold" / "k8s").glob("*.yaml"),
                    *(EXAMPLES / "tilt" / "k8s").glob("*.yaml")])
MANIFESTS.remove(CONFIG)


def documents(path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def objects(kind: str) -> list[dict]:
    return [d for p in MANIFESTS for d in documents(p) if d["kind"] == kind]


def check(identity: str, image: str) -> int:
    """`meshreg policy check --as IDENTITY push REPO:TAG` on the example config; the exit code (0 allow, 3 deny)."""
    result = CliRunner().invoke(main, ["policy", "check", "-c", str(CONFIG), "--as", identity, "push", image])
    assert result.exit_code in (0, 3), result.output
    return result.exit_code


def split(reference: str, registry: str) -> str:
    """The repository:tag of an image reference on `registry`."""
    assert reference.startswith(registry + "/"), f"{reference} is not on {registry}"
    return reference[len(registry) + 1:]


# --- builders -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=[str(p.relative_to(EXAMPLES)) for p in MANIFESTS])
def test_every_kubernetes_object_in_the_examples_validates_strictly(path, version):
    built_in = [d for d in documents(path) if not d["apiVersion"].startswith("tekton.dev/")]
    assert built_in or path.name.startswith("tekton-taskrun")
    assert [e for d in built_in for e in validate_kubernetes(d, version)] == []


def test_the_builders_readme_claims_the_versions_validated_here():
    readme = (EXAMPLES / "builders" / "README.md").read_text()
    assert f"**Kubernetes {OLDEST} or newer**" in readme and f"from {OLDEST} on" in readme
    assert VERSIONS[0] == OLDEST


def builder_pods() -> dict[str, tuple[str, dict]]:
    """Job name -> (NS/SA identity, pod template)."""
    def identity(job: dict) -> str:
        return f"{job['metadata']['namespace']}/{job['spec']['template']['spec']['serviceAccountName']}"

    return {j["metadata"]["name"]: (identity(j), j["spec"]["template"]) for j in objects("Job")}


def test_there_is_a_kaniko_and_a_rootless_buildkit_job():
    images = {c["image"].rsplit(":", 1)[0] for _, pod in builder_pods().values() for c in pod["spec"]["containers"]}
    assert images == {"gcr.io/kaniko-project/executor", "docker.io/moby/buildkit"}
    assert any(c["image"].endswith("-rootless") for _, p in builder_pods().values() for c in p["spec"]["containers"])


@pytest.mark.parametrize("job", sorted(builder_pods()))
def test_each_builder_job_completes_with_a_native_sidecar(job):
    metadata = builder_pods()[job][1]["metadata"]
    assert metadata["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    assert metadata["labels"]["sidecar.istio.io/inject"] == "true"


def destinations() -> dict[str, tuple[str, str]]:
    """Builder -> (identity, the image it pushes), read from each builder's own arguments."""
    out = {}
    for name, (identity, pod) in builder_pods().items():
        args = " ".join(pod["spec"]["containers"][0]["args"])
        found = re.search(r"--destination=(\S+)", args) or re.search(r"type=image,name=([^,\s]+)", args)
        out[name] = identity, found.group(1)
    task = objects("Task")[0]
    [param] = task["spec"]["params"]
    run = objects("TaskRun")[0]
    out["tekton"] = f"{run['metadata']['namespace']}/{run['spec']['serviceAccountName']}", param["default"]
    return out


@pytest.mark.parametrize("builder", sorted(destinations()))
def test_each_builder_pushes_to_the_registry_service_where_its_identity_may_write(builder):
    identity, image = destinations()[builder]
    assert check(identity, split(image, SERVICE)) == 0
    assert check(identity, "dev/" + split(image, SERVICE).split("/", 1)[1]) == 3  # the push proxy's prefix


def test_kaniko_and_the_tekton_step_use_plain_http_to_exactly_that_registry():
    steps = [s for s in objects("Task")[0]["spec"]["steps"] if "kaniko" in s["image"]]
    kaniko = [c for _, pod in builder_pods().values() for c in pod["spec"]["containers"] if "kaniko" in c["image"]]
    for container in kaniko + steps:
        assert f"--insecure-registry={SERVICE}" in container["args"]
        assert "--insecure" not in container["args"] and "--skip-tls-verify" not in container["args"]


def test_buildkit_pushes_and_pulls_plain_http_to_that_registry():
    containers = [c for _, pod in builder_pods().values() for c in pod["spec"]["containers"]]
    [buildkit] = [c for c in containers if "buildkit" in c["image"]]
    assert any("push=true,registry.insecure=true" in a for a in buildkit["args"])
    config = next(c for c in objects("ConfigMap") if c["metadata"]["name"] == "buildkitd")
    toml = config["data"]["buildkitd.toml"]
    assert f'[registry."{SERVICE}"]' in toml and "http = true" in toml
    assert "--config=/etc/buildkit/buildkitd.toml" in buildkit["env"][0]["value"]


def _as_container(step: dict, task: dict, run: dict) -> dict:
    """A Tekton step as the container Tekton runs: params and workspace paths filled in, `script` as a command."""
    values = {f"params.{p['name']}": p["default"] for p in task["spec"]["params"]}
    values.update({f"workspaces.{w['name']}.path": f"/workspace/{w['name']}" for w in run["spec"]["workspaces"]})
    text = re.sub(r"\$\(([^)]+)\)", lambda m: values[m.group(1)], json.dumps(step))
    container = json.loads(text)
    if "script" in container:
        container["command"] = ["sh", "-c", container.pop("script")]
    return container


def test_the_tekton_steps_are_valid_containers_and_the_taskrun_fits_the_task():
    task, run = objects("Task")[0], objects("TaskRun")[0]
    assert (task["apiVersion"], run["apiVersion"]) == ("tekton.dev/v1", "tekton.dev/v1")
    assert run["spec"]["taskRef"]["name"] == task["metadata"]["name"]
    assert {w["name"] for w in run["spec"]["workspaces"]} == {w["name"] for w in task["spec"]["workspaces"]}
    assert run["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
    containers = [_as_container(s, task, run) for s in task["spec"]["steps"]]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "taskrun-pod"},
           "spec": {"serviceAccountName": run["spec"]["serviceAccountName"], "containers": containers}}
    assert [e for v in (VERSIONS[0], VERSIONS[-1]) for e in validate_kubernetes(pod, v)] == []


# --- Skaffold and Tilt ----------------------------------------------------------------------------------------


def test_the_laptop_address_is_the_published_host_and_pushes_land_in_the_push_proxys_scope():
    host = hosting.addresses(CFG)["host"]
    assert host == f"localhost:{CFG.registry.push_proxy.port}/dev" == "localhost:5000/dev"
    assert check("push-proxy", "dev/hello:v1") == 0
    assert check("push-proxy", "builds/hello:v1") == 3


SKAFFOLD = yaml.safe_load((EXAMPLES / "skaffold" / "skaffold.yaml").read_text())
SKAFFOLD_RUNS = re.findall(r"skaffold dev (-p .*)", (EXAMPLES / "skaffold" / "skaffold.yaml").read_text())
PUBLISHED = hosting.addresses(CFG)


def _default_repo(flags: str) -> str:
    return next(a.split("=", 1)[1] for a in shlex.split(flags) if a.startswith("--default-repo="))


def skaffold_name(image: str, repo: str) -> str:
    """Skaffold v2.24.0's default-repo rule (pkg/skaffold/docker/default_repo.go) for single-level repos."""
    return f"{repo}/{re.sub(r'[/._:@]', '_', image)}"


@pytest.mark.parametrize("example", ["skaffold", "tilt"])
def test_skaffold_and_tilt_say_how_to_run_and_use_the_builders_config(example):
    assert "../builders/meshreg.yaml" in (EXAMPLES / example / "README.md").read_text()


def test_skaffold_uses_the_newest_schema_and_builds_the_image_its_manifest_deploys():
    assert SKAFFOLD["apiVersion"] == "skaffold/v4beta14" and SKAFFOLD["kind"] == "Config"
    [artifact] = SKAFFOLD["build"]["artifacts"]
    [manifest] = SKAFFOLD["manifests"]["rawYaml"]
    deployment = documents(EXAMPLES / "skaffold" / manifest)[0]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == artifact["image"]
    assert SKAFFOLD["build"]["local"]["push"] is True


def test_skaffold_on_a_laptop_takes_the_published_host_and_pushes_into_dev():
    image = SKAFFOLD["build"]["artifacts"][0]["image"]
    pushed = skaffold_name(image, PUBLISHED["host"])
    assert pushed == PUBLISHED["hostFromContainerRuntime"] + "/hello"  # the same name pods pull
    assert check("push-proxy", f"{split(pushed, 'localhost:5000')}:v1") == 0
    text = (EXAMPLES / "skaffold" / "skaffold.yaml").read_text()
    assert "skaffold config set --kube-context CONTEXT local-cluster true" in text
    assert f"--default-repo={PUBLISHED['host']}" in text


def test_skaffold_in_cluster_builds_as_a_writer_of_its_default_repo():
    [run] = SKAFFOLD_RUNS
    [profile] = SKAFFOLD["profiles"]
    cluster = profile["build"]["cluster"]
    identity = f"{cluster['namespace']}/{cluster['serviceAccount']}"
    assert check(identity, f"{split(_default_repo(run), SERVICE)}/hello:v1") == 0
    assert profile["build"]["insecureRegistries"] == [SERVICE]
    assert cluster["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"


def tilt(path) -> dict:
    """Run a Tiltfile (Starlark, here also valid Python) with Tilt's functions recording their arguments."""
    calls: dict = {}

    def record(name):
        return lambda *args, **kwargs: calls.setdefault(name, []).append((args, kwargs))

    names = ("default_registry", "docker_build", "custom_build", "k8s_yaml", "allow_k8s_contexts")
    exec(compile(path.read_text(), str(path), "exec"), {n: record(n) for n in names})
    for args, _ in calls["k8s_yaml"]:
        assert (path.parent / args[0]).exists()
    return calls


def test_tilt_on_a_laptop_names_no_registry_and_its_published_names_land_in_dev():
    calls = tilt(EXAMPLES / "tilt" / "Tiltfile")
    assert "default_registry" not in calls  # Tilt would ignore it: the published ConfigMap wins
    [((image, context), _)] = calls["docker_build"]
    assert (EXAMPLES / "tilt" / context / "Dockerfile").exists()
    assert PUBLISHED["host"] == PUBLISHED["hostFromContainerRuntime"] == "localhost:5000/dev"
    assert check("push-proxy", f"dev/{image}:tilt-0123456789abcdef") == 0


def test_tilt_in_cluster_pushes_to_the_cluster_network_address_as_kaniko_and_deploys_the_node_proxys_name():
    calls = tilt(EXAMPLES / "tilt" / "in-cluster" / "Tiltfile")
    [((_image, command), options)] = calls["custom_build"]
    overrides = json.loads(re.search(r"--overrides='([^']+)'", command).group(1))
    namespace = re.search(r"kubectl -n (\S+) run", command).group(1)
    identity = f"{namespace}/{overrides['spec']['serviceAccountName']}"
    push = re.search(r'--destination="([^"]+):\$TAG"', command).group(1)
    pull = re.search(r'echo "([^"]+):\$TAG" > (\S+)', command)
    assert push.startswith(PUBLISHED["hostFromClusterNetwork"] + "/")  # never localhost inside the Kaniko pod
    assert check(identity, f"{split(push, SERVICE)}:v1") == 0
    assert pull.group(1) == f"localhost:{CFG.registry.port}/{split(push, SERVICE)}"  # the node proxy's name
    assert options["outputs_image_ref_to"] == pull.group(2) and options["skips_local_docker"] is True
    assert f"--insecure-registry={SERVICE}" in command
    assert overrides["metadata"]["annotations"]["sidecar.istio.io/nativeSidecar"] == "true"
