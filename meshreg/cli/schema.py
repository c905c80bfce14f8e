"""`meshreg schema`: the JSON Schema of meshreg.yaml, for editors and CI."""

from __future__ import annotations

import json

import click

from meshreg.cli.output.document import dump


@click.command()
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default="json", show_default=True,
              help="Print the schema as JSON or as YAML.")
def schema(output: str) -> None:
    """Print the JSON Schema (draft 2020-12) of meshreg.yaml, generated from the config reader's own key tables.

    \b
    `meshreg init` writes it as meshreg.schema.json beside the config, whose first line,
      # yaml-language-server: $schema=meshreg.schema.json
    makes editors with the YAML language server (VS Code, Neovim, Helix, ...) complete and check the config
    offline. After upgrading meshreg, write it again. The schema checks keys, types and names; meshreg itself
    checks the rest (meshreg render reports every problem with its line).

    \b
    Examples:
      meshreg schema > meshreg.schema.json
      meshreg schema -o yaml | less
      check-jsonschema --schemafile meshreg.schema.json meshreg.yaml
    """
    from meshreg.config.schema import schema as build

    click.echo(json.dumps(build(), indent=2) if output == "json" else dump(build(), "yaml"))
