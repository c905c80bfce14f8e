"""The `meshreg` command: turns options into calls and meshreg errors into one line and an exit code."""

from __future__ import annotations

import gc as garbage_collector  # not `gc`: the gc command's module, meshreg.cli.gc, takes that name here
import importlib
import os
import sys
from typing import Any

import click

from meshreg import __version__
from meshreg.cli.options import config_option, say
from meshreg.errors import MeshregError

# Every command but `init` and `render` lives in its own module, imported only when that command runs, so no
# command pays for another's imports (the Kubernetes client, the PKI, the policy evaluator). The group's own
# --help lists them from the summaries below, without importing them: each is its command's short help (the first
# sentence of its help; click shortens it to fit), and tests/cli/test_lazy_commands.py keeps them equal.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("meshreg.cli.audit:audit",
              "Who pushed or deleted what, and who was refused a write, from the audit records the proxies that "
              "enforce the registry's policies write to their logs (registry sidecars or the waypoint; a dedicated "
              "ingress gateway for its clients)."),
    "certs": ("meshreg.cli.certs:certs",
              "Client certificates for writers outside the cluster (spec.ingress clients with method: mtls)."),
    "connect": ("meshreg.cli.connect:connect",
                "Forward a local port to the registry's push proxy, so `docker push`, Skaffold and Tilt can push to "
                "localhost:PORT."),
    "doctor": ("meshreg.cli.doctor:doctor", "Check the cluster for what meshreg needs, before or after `up`."),
    "down": ("meshreg.cli.down:down", "Remove what `meshreg up` applied, in reverse order."),
    "gc": ("meshreg.cli.gc:gc",
           "Run a registry's gc CronJob now (a Job from its template, like kubectl create job --from=cronjob/...), "
           "follow it, and print what retention deleted and what garbage-collect reclaimed."),
    "policy": ("meshreg.cli.policy:policy",
               "Who may write: edit the writers in the config file, list them, check requests offline."),
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


def run() -> None:
    """The `meshreg` command as a process (the console script, `python -m meshreg`): `main`, and then an exit that
    skips the interpreter's last garbage collection of everything the command made (gc.freeze: 5-15 ms, nearly all
    of a process's exit). At-exit handlers and the flushing of output still run; only cycles stay uncollected, which
    the process's end frees anyway."""
    try:
        main()
    finally:
        garbage_collector.freeze()
