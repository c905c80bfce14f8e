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
from support.configs import minimal

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
           "meshreg.gcjob", "croniter", "zoneinfo"],
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


def modules_of(*args: str, cwd: pathlib.Path) -> set[str]:
    """The modules `meshreg ARGS` loaded in a fresh process (which must succeed)."""
    out = cwd / "modules.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHREG_") and k != "KUBECONFIG"}
    done = subprocess.run([sys.executable, "-c", HARNESS, str(out), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)
    code, *names = out.read_text().splitlines()
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
