"""`meshreg up`: deploy (or update) what the config renders, and say where to push and pull."""

from __future__ import annotations

import click

from meshreg.cli.options import cluster_options, config_option, output_option, prepare, say, timeout_option
from meshreg.cli.output import up as formats
from meshreg.cli.output.document import dump
from meshreg.cluster.outcomes import Outcome
from meshreg.operations.up import UpEvents, UpReport
from meshreg.operations.up import up as deploy


class _Printer(UpEvents):
    """Each outcome on stdout as it is applied, then the summary (with -o json or yaml, only the document at the
    end); warnings, notes and progress on stderr."""

    def __init__(self, *, quiet: bool, output: str) -> None:
        super().__init__(quiet=quiet)
        self.text = output == "text"

    def warning(self, text: str) -> None:
        say(f"warning: {text}")

    def dry_run(self, server: str) -> None:
        if self.text:
            click.echo(formats.dry_run(server))

    def outcome(self, outcome: Outcome) -> None:
        if self.text:
            click.echo(formats.outcome_line(outcome))

    def applied(self, report: UpReport) -> None:
        if self.text:
            click.echo(formats.text(report))
        for note in report.notes:
            say(note)

    def note(self, text: str) -> None:
        say(text)


@click.command()
@config_option
@cluster_options
@click.option("--dry-run", is_flag=True, help="Server-side dry run: print what would be created, changed or "
                                              "pruned, and change nothing.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the registry and node proxy to be ready.")
@timeout_option(default="5m", minimum=1, what="the rollout")
@click.option("--adopt", is_flag=True, help="Take over existing objects with meshreg's names that meshreg "
                                            "does not manage (otherwise they are reported and left alone); never "
                                            "another meshreg instance's.")
@click.option("--force-conflicts", is_flag=True, help="Take over fields another field manager owns.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.option("--skip-checks", is_flag=True, help="Do not run the preflight checks (meshreg doctor's FAIL-level "
                                                  "checks) before applying.")
@output_option
def up(config_path: str | None, kubeconfig: str | None, context: str | None, dry_run: bool, no_wait: bool,
       timeout: float, adopt: bool, force_conflicts: bool, quiet: bool, skip_checks: bool, output: str) -> None:
    """Deploy (or update) the registry, node proxy and policies to the cluster, prune what the config no longer
    renders, and wait until the rollout is done and Istio enforces the policies on every pod.

    Nothing changes unless the API server accepts every object in a server-side dry run first (admission, quota,
    webhooks, schemas); every refusal is reported at once, each naming its object.

    \b
    Examples:
      meshreg up
      meshreg up --dry-run            # what would change, changing nothing
      meshreg up --skip-checks        # no preflight (see meshreg doctor)
      meshreg up -c prod.yaml --context prod --timeout 10m
      meshreg up -o json | jq -r '.addresses[0].pull'   # the document once ready; progress stays on stderr
    """
    cfg, objects, cluster = prepare(config_path, kubeconfig, context)
    report = deploy(cfg, cluster, manifests=objects, dry_run=dry_run, wait=not no_wait, timeout=timeout, adopt=adopt,
                    force_conflicts=force_conflicts, skip_checks=skip_checks,
                    events=_Printer(quiet=quiet, output=output))
    if output != "text":
        click.echo(dump(formats.data(report), output))
    elif not report.dry_run:
        click.echo(formats.addresses(report))
    if not report.dry_run:
        for line in report.notices:  # the addresses already name the writers
            say(line)
