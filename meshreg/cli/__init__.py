"""The `meshreg` command: turns options into calls and meshreg errors into one line and an exit code."""

from __future__ import annotations

import importlib
import sys
from typing import Any, NoReturn

import click
from click.exceptions import NoArgsIsHelpError

from meshreg import __version__
from meshreg.cli.options import say
from meshreg.errors import Interrupted, MeshregError

# Every command lives in its own module, imported only when used, so `meshreg render` never pays for importing the
# Kubernetes client.
LAZY_COMMANDS = {
    "init": "meshreg.cli.init:init",
    "render": "meshreg.cli.render:render",
    "schema": "meshreg.cli.schema:schema",
    "completion": "meshreg.cli.completion:completion",
    "up": "meshreg.cli.up:up",
    "down": "meshreg.cli.down:down",
    "status": "meshreg.cli.status:status",
    "policy": "meshreg.cli.policy:policy",
    "connect": "meshreg.cli.connect:connect",
    "doctor": "meshreg.cli.doctor:doctor",
    "verify": "meshreg.cli.verify:verify",
    "certs": "meshreg.cli.certs:certs",
    "gc": "meshreg.cli.gc:gc",
    "audit": "meshreg.cli.audit:audit",
}


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS and name not in self.commands:
            module, _, attr = LAZY_COMMANDS[name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, name)

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
                say(f"error: {line}")
            ctx.exit(e.exit_code)
        except click.UsageError as e:  # a bad option or value of a command: one line too
            _usage(e)
        except BrokenPipeError:  # `meshreg render | head`
            sys.stderr.close()
            ctx.exit(0)
        except KeyboardInterrupt:  # Ctrl-C in a command that has nothing more to say than that (up, down say more)
            say("error: interrupted")
            ctx.exit(Interrupted.exit_code)


class _OneLine(click.ClickException):
    """A usage error as one line, like every other error: what is wrong, and where the help is."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        say(f"error: {self.format_message()}")


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

