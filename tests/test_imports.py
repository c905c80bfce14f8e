"""Each command imports only what it uses (issue 27), checked in a fresh process per command, so start-up cost
cannot creep back: a render loads a feature's modules only when the config has the feature, `--help` loads no
command, and the commands that never talk to a cluster load no Kubernetes client, no PKI, no YAML editor."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from meshreg.cli import LAZY_COMMANDS
from meshreg.pki.authority import Authority
from support import local_api
from support.apiserver import write_kubeconfig
from support.configs import minimal

api = local_api.api  # the fixture: a local API server

# A fresh interpreter runs the CLI as `meshreg ARGS` and writes its exit code and every loaded module's name.
HARNESS = """\
import sys
out, sys.argv = sys.argv[1], ["meshreg", *sys.argv[2:]]
from meshreg.cli import main
code = 0
try:
    main()
except SystemExit as e:
    code = e.code
with open(out, "w") as f:
    f.write("\\n".join([str(code), *sorted(sys.modules)]))
"""

# The modules of each opt-in feature: loaded exactly when a config has that feature.
FEATURES = {
    "ambient": ["meshreg.render.ambient"],
    "gc": ["meshreg.render.gc", "meshreg.config.gc", "meshreg.config.features.gc", "meshreg.retention",
           "meshreg.gcjob", "cronsim", "zoneinfo"],
    "ingress": ["meshreg.render.ingress", "meshreg.config.ingress", "meshreg.config.features.ingress",
                "meshreg.pki.material"],
    "mirror": ["meshreg.render.mirror", "meshreg.config.features.mirror"],
    "pushProxy": ["meshreg.render.pushproxy", "meshreg.config.features.pushproxy"],
    "runtimeConfig": ["meshreg.render.runtimeconfig"],
    "s3": ["meshreg.render.objectstorage", "meshreg.config.features.objectstorage"],
}
FEATURE_CONFIGS = {
    "ambient": "  mesh: ambient\n",
    "gc": '  registry: {deleteEnabled: true, gc: {schedule: "0 3 * * 0", timeZone: Europe/Berlin},\n'
          "             retention: {rules: [{keepNewest: 5}]}}\n",
    "ingress": "  ingress:\n    host: registry.example.com\n    credentialName: registry-tls\n"
               "    clients: [{name: loader, method: mtls, repositories: [images/]}]\n",
    "mirror": "  registries:\n    - {name: cache, default: true, port: 5000, role: mirror,\n"
              "       mirror: {upstream: https://ghcr.io}}\n",
    "pushProxy": "  pushProxy: {repositories: [dev/]}\n",
    "runtimeConfig": "  nodeProxy: {runtimeConfig: {containerd: {enabled: true}}}\n",
    "s3": "  registry: {storage: {s3: {bucket: images, region: eu-central-1, credentialsSecret: s3}}}\n",
}
# What no command that stays off the cluster needs: the Kubernetes client, its HTTP stack, the PKI's cryptography,
# the byte-keeping writers-list editor (policy grant and revoke), the JWT library, importlib.resources' baggage, and
# click's shell completion (for a shell that asks, not for a command that runs).
CLUSTER_AND_TOOLS = ["kubernetes", "urllib3", "httpx", "cryptography", "joserfc", "importlib.resources",
                     "meshreg.cluster.client", "meshreg.config.editing", "meshreg.config.writerlist",
                     "meshreg.config.spans", "meshreg.pki.authority", "click.shell_completion",
                     "meshreg.cli.completion"]
ALL_FEATURES = sorted({m for modules in FEATURES.values() for m in modules})


def modules_of(*args: str, cwd: pathlib.Path, succeed: bool = True) -> set[str]:
    """The modules `meshreg ARGS` loaded in a fresh process (which must succeed, unless told otherwise)."""
    out = cwd / "modules.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHREG_") and k != "KUBECONFIG"}
    done = subprocess.run([sys.executable, "-c", HARNESS, str(out), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)
    code, *names = out.read_text().splitlines()
    if succeed:
        assert code in ("0", "None"), f"meshreg {' '.join(args)} failed ({code}): {done.stderr[-2000:]}"
    return set(names)


def loaded(modules: set[str], names: list[str]) -> list[str]:
    """Which of `names` (modules or packages) are among `modules`."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_render_of_the_default_loads_no_feature_and_no_config_reader(tmp_path: pathlib.Path) -> None:
    modules = modules_of("render", cwd=tmp_path)
    assert loaded(modules, ALL_FEATURES + CLUSTER_AND_TOOLS) == []
    # no file: no parser, no validators (the built-in default is already a Config)
    assert loaded(modules, ["meshreg.config.spec", "meshreg.config.reader", "meshreg.config.source", "difflib"]) == []
    assert loaded(modules, ["hashlib", "_hashlib"]) == []  # OpenSSL's SHA-256: the built-in one does (render.sha256)


def test_render_of_a_file_without_features_loads_no_feature(tmp_path: pathlib.Path) -> None:
    (tmp_path / "meshreg.yaml").write_text(minimal("  writers: [{serviceAccount: builds/kaniko}]\n"))
    modules = modules_of("render", cwd=tmp_path)
    assert "meshreg.config.spec" in modules  # the file was read
    assert loaded(modules, ALL_FEATURES + CLUSTER_AND_TOOLS) == []


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_render_loads_a_features_modules_with_that_feature_only(tmp_path: pathlib.Path, feature: str) -> None:
    if feature == "ingress":
        Authority.create(tmp_path / "ingress-ca", domain="registry.example.com", days=30)
    (tmp_path / "meshreg.yaml").write_text(minimal(FEATURE_CONFIGS[feature]))
    modules = modules_of("render", cwd=tmp_path)
    assert loaded(modules, FEATURES[feature]) == sorted(FEATURES[feature])
    others = [m for m in ALL_FEATURES if m not in FEATURES[feature]]
    assert loaded(modules, others + CLUSTER_AND_TOOLS) == []


def test_help_loads_no_command_no_config_and_no_yaml(tmp_path: pathlib.Path) -> None:
    modules = modules_of("--help", cwd=tmp_path)
    commands = [target.partition(":")[0] for target, _ in LAZY_COMMANDS.values()]
    assert loaded(modules, commands + ["meshreg.config", "meshreg.render", "meshreg.operations", "yaml",
                                       "meshreg.cli.options", "click.shell_completion"]) == []


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_a_commands_help_loads_no_cluster_client_and_no_feature(tmp_path: pathlib.Path, name: str) -> None:
    modules = modules_of(name, "--help", cwd=tmp_path)
    assert LAZY_COMMANDS[name][0].partition(":")[0] in modules
    completion = ["click.shell_completion"] if name != "completion" else []  # the completion command's own
    assert loaded(modules, ["kubernetes", "urllib3", "cryptography", "joserfc", "meshreg.config.editing",
                            "meshreg.config.spans", "meshreg.pki.authority", *completion]) == []


@pytest.mark.parametrize("args", [
    ("policy", "check", "--as", "builds/kaniko", "push", "team-a/app"),
    ("policy", "list"),
    ("init", "-c", "-"),
], ids=" ".join)
def test_offline_commands_load_no_cluster_client_and_no_feature(tmp_path: pathlib.Path, args: tuple[str, ...]) -> None:
    (tmp_path / "meshreg.yaml").write_text(minimal("  writers: [{serviceAccount: builds/kaniko}]\n"))
    assert loaded(modules_of(*args, cwd=tmp_path), ALL_FEATURES + CLUSTER_AND_TOOLS) == []


def test_policy_grant_loads_the_writers_list_editor_it_needs(tmp_path: pathlib.Path) -> None:
    """The check above can fail: the modules it keeps out of `policy check` are there when they are needed."""
    (tmp_path / "meshreg.yaml").write_text(minimal("  writers: [{serviceAccount: builds/kaniko}]\n"))
    modules = modules_of("policy", "grant", "ci/builder", cwd=tmp_path)
    editor = ["meshreg.config.editing", "meshreg.config.spans", "meshreg.config.writerlist"]
    assert loaded(modules, editor) == editor


# The parts of the Kubernetes client that `import kubernetes` would load and no meshreg command uses, and the parts of
# meshreg that `up` does not need: the audit record parser and trail (up checks the mesh config only), status's
# readers (for a failed wait only).
KUBERNETES_UNUSED = ["kubernetes.dynamic", "kubernetes.watch", "kubernetes.stream", "kubernetes.leaderelection",
                     "kubernetes.informer", "kubernetes_validate", "jsonschema", "websocket"]
UP_UNUSED = ["meshreg.audit.records", "meshreg.audit.timeline", "meshreg.audit.events", "meshreg.audit.identity",
             "meshreg.status"]


def test_up_loads_only_the_kubernetes_client_parts_it_uses(tmp_path: pathlib.Path, api) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{api.server_address[1]}")
    modules = modules_of("up", "--no-wait", "--kubeconfig", kubeconfig, cwd=tmp_path, succeed=False)
    assert api.requests, "up never reached the API server"
    assert {"kubernetes.client.api_client", "kubernetes.config.kube_config", "meshreg.audit.meshconfig"} <= modules
    assert loaded(modules, KUBERNETES_UNUSED + UP_UNUSED) == []


def test_the_kubernetes_package_still_loads_a_part_on_first_use() -> None:
    """After meshreg's lean load, code in the same process uses the package as usual: its other parts load as
    attributes and as imports, and its version is there."""
    script = """\
import sys
from meshreg.cluster import kubeclient
client, config = kubeclient.parts()
import kubernetes
assert "kubernetes.watch" not in sys.modules
assert kubernetes.watch.Watch and kubernetes.client.ApiClient
from kubernetes import dynamic, stream
from kubernetes.utils import parse_quantity
assert dynamic.DynamicClient and stream.stream and parse_quantity("1Ki") == 1024
assert kubernetes.__version__.split(".")[0].isdigit()
assert not hasattr(kubernetes, "no_such_part") and not hasattr(kubernetes, "__no_such_dunder__")
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
