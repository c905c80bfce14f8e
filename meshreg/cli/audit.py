"""`meshreg audit`: who wrote what to a registry, and who was refused, from the proxies' audit records."""

from __future__ import annotations

import json
from datetime import timedelta

import click
import yaml

from meshreg.cli.options import (
    Duration,
    cluster_options,
    completer,
    config_option,
    echo_report,
    load_config,
    output_option,
    prepare,
    registry_option,
)
from meshreg.cli.output import audit as formats
from meshreg.errors import UsageError
from meshreg.operations.audit import audit as run_audit

identities = completer("identities")  # completes for a shell that asks; loads nothing for a command that runs


def _repository(value: str | None) -> str | None:
    from meshreg.config.names import check_repository_prefix

    problem = check_repository_prefix(value) if value is not None else None
    if problem or value == "*":
        raise UsageError(f"--repo {value}: {problem or 'leave --repo out for every repository'}")
    return value


def _mesh_config(provider: str) -> str:
    from meshreg.audit import provider as entry

    head = (f"# The extension provider meshreg's audit Telemetry names (spec.audit.provider: {provider}).\n"
            "# Merge it into the mesh config's extensionProviders (istioctl: spec.meshConfig; Helm istiod\n"
            "# chart: meshConfig; or ConfigMap istio, key mesh), keeping the providers already there: a list\n"
            "# given to Helm or istioctl replaces the whole list. See docs/audit.md.\n")
    return head + yaml.safe_dump({"extensionProviders": [entry(provider)]}, sort_keys=False, width=200)


@click.command()
@config_option
@cluster_options
@registry_option
@click.option("--since", type=Duration(minimum=1), default=None,
              help="Only records newer than this: 30m, 1h, 2h30m, 7d, or seconds [default: all the logs hold].")
@click.option("--repo", "repository", metavar="PREFIX", default=None,
              help="Only these repositories: a prefix as writers take them (team-a covers team-a/...).")
@click.option("--who", metavar="ID", default=None, shell_complete=identities,
              help="Only this identity: NS/SA, a principal or spiffe:// ID, client:NAME, push-proxy, ISSUER/SUBJECT.")
@output_option
@click.option("--mesh-config", "mesh_config", is_flag=True,
              help="Print the mesh config entry that writes the audit records, and exit (no cluster needed).")
@click.option("--schema", is_flag=True, help="Print the JSON Schema of an audit record, and exit.")
@click.pass_context
def audit(ctx: click.Context, config_path: str | None, kubeconfig: str | None, context: str | None,
          registry: str | None, since: float | None, repository: str | None, who: str | None, output: str,
          mesh_config: bool, schema: bool) -> None:
    """Who pushed or deleted what, and who was refused a write, from the audit records the proxies that enforce the
    registry's policies write to their logs (registry sidecars or the waypoint; a dedicated ingress gateway for its
    clients). Identities are the ones the proxy verified: a workload's mTLS certificate, an ingress client's
    certificate or token, the push proxy. Prints where the records came from and how far back they reach. Exit 0
    when every source was read and the proxies are writing records, 1 otherwise, 2 for bad input.

    \b
    Examples:
      meshreg audit --since 1h
      meshreg audit --repo team-a/ --who ci/builder -o json
      meshreg audit --since 7d -o yaml
      meshreg audit --registry service-images --who client:airgap-loader
      meshreg audit --mesh-config        # the extensionProviders entry for the mesh config
    """
    if mesh_config or schema:  # nothing of the cluster is needed
        from meshreg.audit import schema as record_schema

        provider = load_config(config_path).audit.provider
        click.echo(json.dumps(record_schema(), indent=2) if schema else _mesh_config(provider), nl=not mesh_config)
        return
    window, prefix = None if since is None else timedelta(seconds=since), _repository(repository)
    cfg, manifests, cluster = prepare(config_path, kubeconfig, context)
    cfg.get_registry(registry)  # a wrong name fails before any request
    report = run_audit(cfg, cluster, registry=registry, since=window, repository=prefix, who=who,
                       manifests=manifests)
    echo_report(output, text=lambda: formats.text(report), data=lambda: formats.data(report))
    ctx.exit(report.exit_code)
