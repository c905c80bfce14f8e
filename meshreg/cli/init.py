"""`meshreg init`: write the commented starter config (and the JSON Schema its modeline names)."""

from __future__ import annotations

import os

import click

from meshreg.cli.options import moved_option
from meshreg.config.model import DEFAULT_FILE


@click.command()
@click.option("-c", "--config", "path", metavar="FILE", default=DEFAULT_FILE, show_default=True,
              envvar="MESHREG_CONFIG", help="The config file to write (the file every other command reads with "
                                            "-c); - prints the starter on stdout instead.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@moved_option("-o", "--output", instead="the file to write as -c/--config FILE, as every command names the config")
def init(path: str, force: bool) -> None:
    """Write a commented starter meshreg.yaml.

    \b
    Examples:
      meshreg init
      meshreg init -c dev.yaml && meshreg render -c dev.yaml
      meshreg init -c - | less
    """
    from meshreg.config import starter

    if path == "-":
        click.echo(starter.TEXT, nl=False)
        return
    if os.path.lexists(path) and not (force and os.path.isfile(path)):
        raise click.UsageError(f"{path} already exists" + (" (use --force to overwrite it)" if os.path.isfile(path)
                                                           else " and is not a file"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(starter.TEXT)
    click.echo(f"wrote {path}; next: meshreg policy grant NS/SA, then meshreg render or meshreg up", err=True)
