"""The `meshreg` command: turns options into calls and meshreg errors into one line and an exit code."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from meshreg import __version__
from meshreg.cli.options import config_option, say
from meshreg.errors import MeshregError

# Commands that talk to a cluster live in their own modules and are imported only when used,
# so `meshreg render` never pays for importing the Kubernetes client.
LAZY_COMMANDS = {
    "up": "meshreg.cli.up:up",
    "down": "meshreg.cli.down:down",
    "status": "meshreg.cli.status:status",
    "policy": "meshreg.cli.policy:policy",
    "connect": "meshreg.cli.connect:connect",
    "doctor": "meshreg.cli.doctor:doctor",
    "verify": "meshreg.cli.verify:verify",
    "certs": "meshreg.cli.certs:certs",
    "gc": "meshreg.cli.gc:gc",
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

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MeshregError as e:
            say(f"error: {e}")
            ctx.exit(e.exit_code)
        except BrokenPipeError:  # `meshreg render | head`
            sys.stderr.close()
            ctx.exit(0)


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
    """


@main.command()
@click.option("-o", "--output", "path", default="meshreg.yaml", show_default=True, metavar="FILE",
              help="Where to write; - for stdout.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented starter meshreg.yaml.

    \b
    Examples:
      meshreg init
      meshreg init -o dev.yaml && meshreg render -c dev.yaml
    """
    from meshreg.config import starter

    if path == "-":
        click.echo(starter.TEXT, nl=False)
        return
    if os.path.exists(path) and not force:
        raise click.UsageError(f"{path} already exists (use --force to overwrite it)")
    with open(path, "w", encoding="utf-8") as f:
        f.write(starter.TEXT)
    click.echo(f"wrote {path}; next: meshreg policy grant NS/SA, then meshreg render or meshreg up", err=True)


@main.command()
@config_option
@click.option("-o", "--output", "out", default="-", show_default=True, metavar="DIR|-",
              help="A directory to write one file per object into, or - for one YAML stream on stdout.")
def render(config_path: str | None, out: str) -> None:
    """Print every manifest meshreg deploys. Pure: no cluster needed, same config gives the same bytes.

    \b
    Examples:
      meshreg render > meshreg-manifests.yaml
      meshreg render -c prod.yaml -o build/
      meshreg render | kubectl apply --server-side --field-manager meshreg -f -
    """
    from meshreg import config
    from meshreg import render as rendering
    from meshreg.render import manifests

    cfg = config.load(config_path)
    objects = rendering.render(cfg)
    header = manifests.header(cfg, "meshreg render" + (f" -o {out}" if out != "-" else ""))
    if out == "-":
        sys.stdout.write(manifests.dump_all(objects, header))
    else:
        written = manifests.write_dir(objects, out, header)
        click.echo(f"wrote {len(written)} files to {out}", err=True)
    for line in rendering.notices(cfg):
        say(line)
