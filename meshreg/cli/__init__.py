"""The `meshreg` command: turns options into calls and meshreg errors into one line and an exit code."""

from __future__ import annotations

import gc as garbage_collector  # not `gc`: the gc command's module, meshreg.cli.gc, takes that name here
import importlib
import sys
from typing import Any, NoReturn

import click
from click.exceptions import NoArgsIsHelpError

from meshreg import __version__
from meshreg.errors import Interrupted, MeshregError

# Every command lives in its own module, imported only when that command runs, so no command pays for another's
# imports (the Kubernetes client, the PKI, the policy evaluator, the YAML editor). The group's own --help lists them
# from the summaries below, without importing them: each is its command's short help (the first sentence of its
# help; click shortens it to fit), and tests/cli/test_lazy_commands.py keeps them equal.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("meshreg.cli.audit:audit",
              "Who pushed or deleted what, and who was refused a write, from the audit records the proxies that "
              "enforce the registry's policies write to their logs (registry sidecars or the waypoint; a dedicated "
              "ingress gateway for its clients)."),
    "certs": ("meshreg.cli.certs:certs",
              "Client certificates for writers outside the cluster (spec.ingress clients with method: mtls)."),
    "completion": ("meshreg.cli.completion:completion",
                   "Print the completion script for SHELL: commands, options, and values from your files "
                   "(kubeconfig contexts for --context; from the config, registries for --registry, writers for "
                   "`policy revoke` and `verify --as`, identities for `policy check --as`, mtls clients for `certs "
                   "issue|revoke`)."),
    "connect": ("meshreg.cli.connect:connect",
                "Forward a local port to the registry's push proxy, so `docker push`, Skaffold and Tilt can push to "
                "localhost:PORT."),
    "doctor": ("meshreg.cli.doctor:doctor", "Check the cluster for what meshreg needs, before or after `up`."),
    "down": ("meshreg.cli.down:down", "Remove what `meshreg up` applied, in reverse order."),
    "gc": ("meshreg.cli.gc:gc",
           "Run a registry's gc CronJob now (a Job from its template, like kubectl create job --from=cronjob/...), "
           "follow it, and print what retention deleted and what garbage-collect reclaimed."),
    "init": ("meshreg.cli.init:init", "Write a commented starter meshreg.yaml, and meshreg.schema.json beside it."),
    "policy": ("meshreg.cli.policy:policy",
               "Who may write: edit the writers in the config file, list them, check requests offline."),
    "render": ("meshreg.cli.render:render", "Print every manifest meshreg deploys."),
    "schema": ("meshreg.cli.schema:schema",
               "Print the JSON Schema (draft 2020-12) of meshreg.yaml, generated from the config reader's own key "
               "tables."),
    "status": ("meshreg.cli.status:status",
               "Show each object (present, missing or drifted from the config), readiness, mTLS mode, writers and "
               "the published addresses."),
    "up": ("meshreg.cli.up:up",
           "Deploy (or update) the registry, node proxy and policies to the cluster, prune what the config no "
           "longer renders, and wait until the rollout is done and Istio enforces the policies on every pod."),
    "verify": ("meshreg.cli.verify:verify",
               "Prove the deployment works: short-lived probe pods push and pull through the mesh as a writer, a "
               "writer outside its prefixes, a bystander and a pod with no sidecar; a hostNetwork probe uses the "
               "node proxy on a node; the kubelet pulls the pushed image from localhost."),
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            module, _, attr = LAZY_COMMANDS[name][0].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list, laid out by click as always, from each lazy command's summary (nothing imported)."""
        listed = [self.commands.get(name) or click.Command(name, help=LAZY_COMMANDS[name][1])
                  for name in self.list_commands(ctx)]
        click.Group(commands=listed).format_commands(ctx, formatter)

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:  # `meshreg --bogus`
            _usage(e)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MeshregError as e:
            for line in e.lines:  # a config error: one line per problem
                _say(f"error: {line}")
            ctx.exit(e.exit_code)
        except click.UsageError as e:  # a bad option or value of a command: one line too
            _usage(e)
        except BrokenPipeError:  # `meshreg render | head`
            sys.stderr.close()
            ctx.exit(0)
        except KeyboardInterrupt:  # Ctrl-C in a command that has nothing more to say than that (up, down say more)
            _say("error: interrupted")
            ctx.exit(Interrupted.exit_code)


class _OneLine(click.ClickException):
    """A usage error as one line, like every other error: what is wrong, and where the help is."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        _say(f"error: {self.format_message()}")


def _say(line: str) -> None:
    from meshreg.cli.options import say  # options (and what they complete from) load with a command, not for --help

    say(line)


def _usage(e: click.UsageError) -> NoReturn:
    if isinstance(e, NoArgsIsHelpError):  # `meshreg policy`: the help, as click shows it
        raise e
    help_hint = f"; see {e.ctx.command_path} --help" if e.ctx is not None else ""
    raise _OneLine(f"{e.format_message().rstrip('.')}{help_hint}") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "MESHREG"})
@click.version_option(__version__, prog_name="meshreg")
def main() -> None:
    """A private container registry in an Istio mesh: the kubelet pulls from localhost, and only
    named writer workloads can push, over mTLS.

    \b
    Start here:
      meshreg init                 write a commented meshreg.yaml
      meshreg render | less        see every object it deploys
      meshreg up                   deploy to the current kubectl context
      meshreg policy grant builds/kaniko

    \b
    The config is -c FILE (or $MESHREG_CONFIG), else meshreg.yaml here, else the nearest one above up to the
    root of the Git work tree; with none, the built-in default (said on stderr). -o text|json|yaml is a format
    everywhere (docs/output.md); --timeout takes 90s, 5m, 1h30m. Completion: source <(meshreg completion bash).
    """


def run() -> None:
    """The `meshreg` command as a process (the console script, `python -m meshreg`): `main`, and then an exit that
    skips the interpreter's last garbage collection of everything the command made (gc.freeze: 5-15 ms, nearly all
    of a process's exit). At-exit handlers and the flushing of output still run; only cycles stay uncollected, which
    the process's end frees anyway."""
    try:
        main()
    finally:
        garbage_collector.freeze()
