"""`meshreg render`: every manifest, as a YAML stream or a List on stdout, or one file per object in a directory."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from meshreg.cli.options import config_option, load_config, say

FORMATS = ("yaml", "json")


class _Format(click.Choice):
    """yaml or json; anything else (a directory, as -o once meant) is a one-line error naming --output-dir."""

    def __init__(self) -> None:
        super().__init__(FORMATS)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in FORMATS:
            return value
        self.fail(f"{value!r} is not a format (yaml or json); to write one file per object into a directory, use "
                  f"--output-dir {value}", param, ctx)


@click.command()
@config_option
@click.option("-o", "--output", type=_Format(), default="yaml", show_default=True,
              help="yaml: one multi-document stream; json: a v1 List (as kubectl get -o json prints several "
                   "objects).")
@click.option("--output-dir", metavar="DIR", default=None,
              help="Write one YAML file per object into DIR, plus a kustomization.yaml, instead of stdout. DIR "
                   "must be new, empty, or a directory an earlier render wrote (its files are replaced).")
def render(config_path: str | None, output: str, output_dir: str | None) -> None:
    """Print every manifest meshreg deploys. Pure: no cluster needed, same config gives the same bytes.

    \b
    Examples:
      meshreg render > meshreg-manifests.yaml
      meshreg render -o json | jq '.items[].kind'
      meshreg render -c prod.yaml --output-dir deploy/base      # a kustomize base
      meshreg render | kubectl apply --server-side --field-manager meshreg -f -
    """
    from meshreg import render as rendering
    from meshreg.render import manifests

    if output_dir is not None and output != "yaml":
        raise click.UsageError("--output-dir writes YAML files; -o json prints to stdout: use one or the other")
    cfg = load_config(config_path)
    objects = rendering.render(cfg)
    if output_dir is None:
        sys.stdout.write(manifests.dump_all(objects, manifests.header(cfg, "meshreg render")) if output == "yaml"
                         else json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2) + "\n")
    else:
        refusal = manifests.refusal(objects, output_dir)
        if refusal:
            raise click.UsageError(f"--output-dir {output_dir}: {refusal}")
        written = manifests.write_dir(objects, output_dir, manifests.header(cfg, f"meshreg render --output-dir "
                                                                                 f"{output_dir}"))
        click.echo(f"wrote {len(written)} files to {output_dir}", err=True)
    for line in rendering.notices(cfg):
        say(line)
