"""`meshreg init`: write the commented starter config, and beside it the JSON Schema its first line names."""

from __future__ import annotations

import json
import os

import click

from meshreg.cli.options import moved_option, say
from meshreg.config.model import DEFAULT_FILE, SCHEMA_FILE


@click.command()
@click.option("-c", "--config", "path", metavar="FILE", default=DEFAULT_FILE, show_default=True,
              envvar="MESHREG_CONFIG", help="The config file to write (the file every other command reads with "
                                            "-c); - prints the starter on stdout instead.")
@click.option("--force", is_flag=True, help="Overwrite an existing config file (and its meshreg.schema.json).")
@moved_option("-o", "--output", instead="the file to write as -c/--config FILE, as every command names the config")
def init(path: str, force: bool) -> None:
    """Write a commented starter meshreg.yaml, and meshreg.schema.json beside it.

    \b
    The config's first line, `# yaml-language-server: $schema=meshreg.schema.json`, makes editors with the YAML
    language server complete and check it offline against the schema (`meshreg schema` prints it; write it again
    after upgrading meshreg). An existing meshreg.schema.json that differs is left alone, and said so.

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
    schema = _write_schema(os.path.join(os.path.dirname(path), SCHEMA_FILE), force=force)
    click.echo(f"wrote {path}{f' and {schema}' if schema else ''}; next: meshreg policy grant NS/SA, then meshreg "
               "render or meshreg up", err=True)


def _write_schema(path: str, *, force: bool) -> str | None:
    """Write the schema to `path` unless a different file is there (then say so); the path when written."""
    from meshreg.config.schema import schema

    text = json.dumps(schema(), indent=2) + "\n"
    try:
        with open(path, encoding="utf-8") as f:
            current: str | None = f.read()
    except FileNotFoundError:
        current = None
    except (OSError, UnicodeDecodeError):
        current = ""
    if current == text:
        return None
    if current is not None and not force:
        say(f"{path} exists and is not this meshreg's schema; left as it is (meshreg schema > {path} replaces it)")
        return None
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
