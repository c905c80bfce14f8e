"""`meshreg policy`: grant, revoke and list writers in the config file, and check requests offline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import click

from meshreg.cli.options import (
    apply_only,
    cluster_options,
    completer,
    config_option,
    echo_report,
    load_config,
    only_with_apply,
    output_option,
    registry_option,
)
from meshreg.cli.output import policy as formats
from meshreg.operations import policy as policies

identities = completer("identities")  # completes for a shell that asks; loads nothing for a command that runs
writers = completer("writers")  # completes for a shell that asks; loads nothing for a command that runs

EXIT_CODES = """\b
Exit codes: 0 allowed / done, 2 bad input (nothing changed), 3 denied."""


@click.group()
def policy() -> None:
    """Who may write: edit the writers in the config file, list them, check requests offline.

    \b
    Examples:
      meshreg policy grant builds/kaniko
      meshreg policy grant ci/builder --repo team-a/ --repo shared/
      meshreg policy revoke ci/builder --repo shared/
      meshreg policy list -o json
      meshreg policy check --as ci/builder push team-a/app:v1
    """


def _edit_command(action: Literal["grant", "revoke"], help_text: str) -> Callable[..., None]:
    @policy.command(action, help=help_text + "\n\n" + EXIT_CODES)
    @click.argument("identity", metavar="NS/SA", shell_complete=writers if action == "revoke" else None)
    @click.option("--repo", "repositories", multiple=True, metavar="PREFIX",
                  help="A repository prefix such as team-a/ (repeatable); '*' for every repository.")
    @click.option("--delete", is_flag=True, help="The DELETE grant (needs deleteEnabled on the registry).")
    @registry_option
    @config_option
    @click.option("--apply", "apply", is_flag=True, help="Then server-side apply the AuthorizationPolicies.")
    @cluster_options
    def command(identity: str, repositories: tuple[str, ...], delete: bool, registry: str | None,
                config_path: str | None, apply: bool, kubeconfig: str | None, context: str | None) -> None:
        only_with_apply(apply=apply, context=context)
        report = policies.edit(action, config_path=config_path, identity=identity, repositories=tuple(repositories),
                               delete=delete, registry=registry)
        click.echo(formats.edit_text(report))
        if apply:
            apply_only(policies.authorization_policies(report), kubeconfig=kubeconfig, context=context)
        elif report.changed:
            click.echo("next: meshreg up (or meshreg render) to deploy the new policies", err=True)

    return command


grant = _edit_command("grant", """Add a writer, or widen one, keeping the file's comments and layout.

    \b
    Without --repo the writer may write every repository. With --repo, only repositories under those
    prefixes ("team-a/" covers team-a/app, not team-ab/app). On an existing writer, --repo adds prefixes
    ('*' widens it to every repository) and --delete adds the DELETE grant; a grant of what is already granted
    leaves the file as it is and says "unchanged" (exit 0). The node proxy's own identity can never be a writer.

    \b
    Examples:
      meshreg policy grant builds/kaniko
      meshreg policy grant ci/builder --repo team-a/ --repo shared/base/
      meshreg policy grant builds/kaniko --delete --apply --context kind-dev""")

revoke = _edit_command("revoke", """Remove a writer, some of its prefixes, or its DELETE grant.

    \b
    Without --repo or --delete the writer is removed. --repo removes those prefixes; removing the last one
    removes the writer (revoking never widens a writer to every repository). A writer of every repository
    cannot be narrowed by revoke: revoke it, then grant it again with --repo. --delete removes only the
    DELETE grant. Revoking what is not granted leaves the file as it is and says "unchanged" (exit 0).

    \b
    Examples:
      meshreg policy revoke ci/builder
      meshreg policy revoke ci/builder --repo shared/base/""")


@policy.command("list")
@config_option
@registry_option
@output_option
def list_(config_path: str | None, registry: str | None, output: str) -> None:
    """Show the writers with their scopes and DELETE grants, the readers, the node proxy, the push proxy (its
    scope, namespace and Role), and the principals (trust domain applied) the policies name.

    \b
    Examples:
      meshreg policy list
      meshreg policy list -c prod.yaml -o json | jq '.writers[].principal'
    """
    listing = policies.listing(load_config(config_path), registry=registry)
    echo_report(output, text=lambda: formats.listing_text(listing), data=lambda: formats.listing_data(listing))


@policy.command(context_settings={"ignore_unknown_options": False})
@config_option
@registry_option
@click.option("--as", "identity", required=True, metavar="IDENTITY", shell_complete=identities,
              help="NS/SA (a mesh workload), node-proxy (a pull from a node), push-proxy (a push through "
                   "`meshreg connect`), anonymous (plain text), client:NAME (a client of spec.ingress) or external "
                   "(through the ingress without credentials).")
@output_option
@click.option("--skip-waypoint", is_flag=True,
              help="Ambient mode: a client that does not go through the waypoint (it dials the pod IP, or has a "
                   "sidecar); ztunnel alone decides.")
@click.argument("what", metavar="METHOD PATH | push REPO[:TAG] | pull REPO[:TAG]", nargs=2)
@click.pass_context
def check(ctx: click.Context, config_path: str | None, registry: str | None, identity: str, output: str,
          skip_waypoint: bool, what: tuple[str, str]) -> None:
    """Evaluate the rendered policies offline, with Istio's semantics: may IDENTITY send this request?

    \b
    Says ALLOW or DENY for every request, and which policy and rule decided. `push` checks every request a
    push makes (blob HEAD, upload POST/PATCH/PUT, manifest HEAD/PUT); `pull` the requests of a pull.
    A client of the ingress is checked at the gateway (as its certificate's principal, or as a valid token
    with its subject and claims), then at the registry as the gateway; whether a certificate is revoked or a
    token valid is decided before any policy, by the gateway's TLS and JWT checks.
    Paths are normalized as Istio does by default (%2F stays encoded, `..` is resolved, the query is ignored).

    \b
    Examples:
      meshreg policy check --as ci/builder push team-a/app:v1
      meshreg policy check --as node-proxy pull team-a/app
      meshreg policy check --as push-proxy push dev/app
      meshreg policy check --as apps/web POST /v2/team-a/app/blobs/uploads/
      meshreg policy check --as anonymous GET /v2/ -o json
      meshreg policy check --registry service-images --as gitpod/airgap-loader push gitpod/server:1.0
      meshreg policy check --as client:github-ci push acme/app:v1     # through the ingress gateway
      meshreg policy check --skip-waypoint --as ci/builder push team-a/app   # ambient: DENY at ztunnel

    \b
    In ambient mode (spec.mesh: ambient) each request is followed hop by hop (node proxy, waypoint, ztunnel)
    and the hop that decided is named.

    \b
    Exit codes: 0 every request allowed, 3 at least one denied, 2 bad input.
    """
    report = policies.check(load_config(config_path), identity=identity, what=what, registry=registry,
                            skip_waypoint=skip_waypoint)
    echo_report(output, text=lambda: formats.check_text(report), data=lambda: formats.check_data(report))
    ctx.exit(0 if report.allowed else 3)
