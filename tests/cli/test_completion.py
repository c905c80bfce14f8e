"""Shell completion: `meshreg completion bash|zsh|fish` prints click's script for each shell, and values complete
from the user's files: --context from the kubeconfig, --registry and writers from the config. Through click's
completion protocol, and by running the printed script in a real bash (and fish and zsh where installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from meshreg.cli import main
from support.configs import GC_CONFIG, SEVERAL_WRITERS
from support.ingress_configs import CLIENTS, ingress_text

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: lab, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: admin, user: {}}]
contexts:
  - {name: kind-dev, context: {cluster: lab, user: admin}}
  - {name: prod-eu, context: {cluster: eu, user: admin}}
"""
OTHER_KUBECONFIG = "contexts: [{name: staging, context: {cluster: st}}]\n"
BIN = os.path.dirname(sys.executable)  # where pip put the meshreg command


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A working directory with a meshreg.yaml (several writers) and a kubeconfig, as $KUBECONFIG."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meshreg.yaml").write_text(SEVERAL_WRITERS)
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "kubeconfig"))
    for name in [n for n in os.environ if n.startswith("MESHREG_")]:
        monkeypatch.delenv(name)
    return tmp_path


def complete(*words: str) -> list[str]:
    """What click answers for the command line `meshreg WORDS` (the last word being completed), as bash asks."""
    env = {"_MESHREG_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(("meshreg", *words)),
           "COMP_CWORD": str(len(words))}
    result = CliRunner().invoke(main, [], env=env, prog_name="meshreg")
    assert result.exit_code == 0 and result.stderr == "", result.output
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line.startswith("plain,")]


def test_context_completes_from_the_kubeconfig(home):
    assert complete("up", "--context", "") == ["kind-dev", "prod-eu"]
    assert complete("status", "--context", "pr") == ["prod-eu"]


def test_context_completes_from_every_file_of_a_kubeconfig_list_or_from_kubeconfig_typed_before(home, monkeypatch):
    (home / "other").write_text(OTHER_KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(home / "kubeconfig"), str(home / "missing"),
                                                      str(home / "other")]))
    assert complete("doctor", "--context", "") == ["kind-dev", "prod-eu", "staging"]
    assert complete("down", "--kubeconfig", str(home / "other"), "--context", "") == ["staging"]


def test_registry_completes_from_the_config_named_before_it(home):
    (home / "gc.yaml").write_text(GC_CONFIG)
    names = complete("gc", "-c", "gc.yaml", "--registry", "")
    assert names == ["workspace-images", "service-images", "cache", "local"]
    assert complete("connect", "--registry", "") == ["registry"]  # ./meshreg.yaml: the single registry


def test_revoke_and_verify_complete_the_writers(home):
    writers = ["builds/kaniko", "team-a/builder", "ci/buildkit"]
    assert complete("policy", "revoke", "") == writers
    assert complete("policy", "revoke", "team") == ["team-a/builder"]
    assert complete("verify", "--as", "") == writers
    assert complete("policy", "grant", "") == []  # a new writer is anyone: nothing to offer


def test_policy_check_as_completes_every_kind_of_identity(home):
    (home / "ingress.yaml").write_text(ingress_text(clients=CLIENTS))
    offered = complete("policy", "check", "-c", "ingress.yaml", "--as", "")
    assert offered[:1] == ["builds/kaniko"]
    assert {"node-proxy", "push-proxy", "anonymous", "external", "client:loader", "client:app-ci"} <= set(offered)
    assert complete("audit", "-c", "ingress.yaml", "--who", "client:") == ["client:loader", "client:team-a-ci",
                                                                           "client:bot", "client:app-ci"]


def test_certs_names_complete_the_mtls_clients_only(home):
    (home / "ingress.yaml").write_text(ingress_text(clients=CLIENTS))
    assert complete("certs", "issue", "-c", "ingress.yaml", "") == ["loader", "team-a-ci"]  # not the jwt ones
    assert complete("certs", "revoke", "--config", "ingress.yaml", "--serial", "1", "t") == ["team-a-ci"]


def test_a_broken_config_or_kubeconfig_completes_nothing_and_says_nothing(home, monkeypatch):
    (home / "meshreg.yaml").write_text("spec: [")
    (home / "kubeconfig").write_text("contexts: {")
    assert complete("policy", "revoke", "") == []
    assert complete("up", "--context", "") == []


def test_commands_options_and_formats_complete_too(home):
    assert "completion" in complete("com") and complete("sch") == ["schema"]
    assert complete("status", "-o", "") == ["text", "json", "yaml"]
    assert complete("render", "-o", "") == ["yaml", "json"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_completion_command_prints_the_script_for_the_shell(shell):
    result = CliRunner().invoke(main, ["completion", shell])
    assert result.exit_code == 0 and "_MESHREG_COMPLETE" in result.stdout


def test_an_unknown_shell_is_one_line_and_exit_2():
    result = CliRunner().invoke(main, ["completion", "powershell"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "'powershell' is not one of 'bash', 'zsh', 'fish'" in result.output


def run_shell(shell: str, script: str, home) -> list[str]:
    if not shutil.which(shell):
        pytest.skip(f"{shell} not installed: apt-get install {shell} (.ci/run installs it)")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run([shell, "-c", script], cwd=home, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return out.stdout.splitlines()


BASH = """\
source <(meshreg completion bash)
ask() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _meshreg_completion meshreg; \
printf '%s\\n' "${COMPREPLY[@]}"; }
"""


def test_the_bash_script_completes_contexts_writers_and_commands_in_a_real_bash(home):
    assert run_shell("bash", BASH + 'ask meshreg up --context ""', home) == ["kind-dev", "prod-eu"]
    assert run_shell("bash", BASH + "ask meshreg policy revoke ci", home) == ["ci/buildkit"]
    assert run_shell("bash", BASH + "ask meshreg ver", home) == ["verify"]
    # and bash calls it for `meshreg`: the script registered it
    registered = run_shell("bash", BASH + "complete -p meshreg", home)
    assert registered == ["complete -o nosort -F _meshreg_completion meshreg"]


def test_the_fish_script_completes_in_a_real_fish(home):
    script = ('meshreg completion fish | source; complete -C "meshreg up --context "; '
              'complete -C "meshreg verify --as t"')
    assert run_shell("fish", script, home) == ["kind-dev\tlab", "prod-eu\teu", "team-a/builder\tregistry: team-a/"]


def test_the_zsh_script_completes_in_a_real_zsh(home):
    # zsh's completion builtins only run inside its line editor: these stand-ins print what the script hands them.
    script = """\
compdef() { : }
_describe() { print -rl -- "${(@P)3}" }
compadd() { print -rl -- "${(@P)${@[-1]}}" }
source <(meshreg completion zsh)
words=(meshreg up --context ""); CURRENT=4; _meshreg_completion
words=(meshreg policy revoke b); CURRENT=4; _meshreg_completion
"""
    assert run_shell("zsh", script, home) == ["kind-dev:lab", "prod-eu:eu", "builds/kaniko:registry: *"]
