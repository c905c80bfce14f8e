"""`meshreg policy`: grant, revoke and list writers in the config file, and check requests offline."""

from __future__ import annotations

import json
import os

import click

from meshreg.cli.options import (apply_only, cluster_options, config_option, only_with_apply, output_option,
                                 registry_option)
from meshreg.errors import ConfigError

EXIT_CODES = """\b
Exit codes: 0 allowed / done, 2 bad input (nothing changed), 3 denied."""


@click.group()
def policy():
    """Who may write: edit the writers in the config file, list them, check requests offline.

    \b
    Examples:
      meshreg policy grant builds/kaniko
      meshreg policy grant ci/builder --repo team-a/ --repo shared/
      meshreg policy revoke ci/builder --repo shared/
      meshreg policy list -o json
      meshreg policy check --as ci/builder push team-a/app:v1
    """


def _config_file(config_path: str | None) -> str:
    from meshreg.config import DEFAULT_FILE

    path = config_path or DEFAULT_FILE
    if not os.path.exists(path):
        hint = "" if config_path else " (run `meshreg init` first)"
        raise ConfigError(f"{path}: no such file{hint}")
    return path


def _describe(writer) -> str:
    if writer is None:
        return "not a writer"
    scope = "every repository" if not writer.scoped else "repositories " + ", ".join(writer.repositories)
    return f"writes {scope}; DELETE {'granted' if writer.delete else 'not granted'}"


def _edit(action, *, config_path, identity, repositories, delete, registry, apply, kubeconfig, context):
    from meshreg.config import editing

    path = _config_file(config_path)
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    edit = action(text, name=path, identity=identity, repositories=tuple(repositories), delete=delete,
                  registry=registry)
    editing.write_atomically(path, edit.text)
    click.echo(f"{path}: {identity}")
    click.echo(f"  before: {_describe(edit.before)}")
    click.echo(f"  after:  {_describe(edit.after)}")
    if edit.note:
        click.echo(f"  note:   {edit.note}")
    if apply:
        apply_only(_policies(path), kubeconfig=kubeconfig, context=context)
    else:
        click.echo("next: meshreg up (or meshreg render) to deploy the new policies", err=True)


def _policies(path: str) -> list[dict]:
    """Only the AuthorizationPolicies, rendered from the edited file."""
    from meshreg import config
    from meshreg import render as rendering

    return [o for o in rendering.render(config.load(path)) if o["kind"] == "AuthorizationPolicy"]


def _edit_command(name: str, action_name: str, help_text: str):
    @policy.command(name, help=help_text + "\n\n" + EXIT_CODES)
    @click.argument("identity", metavar="NS/SA")
    @click.option("--repo", "repositories", multiple=True, metavar="PREFIX",
                  help="A repository prefix such as team-a/ (repeatable); '*' for every repository.")
    @click.option("--delete", is_flag=True, help="The DELETE grant (needs deleteEnabled on the registry).")
    @registry_option
    @config_option
    @click.option("--apply", "apply", is_flag=True, help="Then server-side apply the AuthorizationPolicies.")
    @cluster_options
    def command(identity, repositories, delete, registry, config_path, apply, kubeconfig, context):
        from meshreg.config import editing

        only_with_apply(apply=apply, context=context)
        _edit(getattr(editing, action_name), config_path=config_path, identity=identity,
              repositories=repositories, delete=delete, registry=registry, apply=apply, kubeconfig=kubeconfig,
              context=context)

    return command


grant = _edit_command("grant", "grant", """Add a writer, or widen one, keeping the file's comments and layout.

    \b
    Without --repo the writer may write every repository. With --repo, only repositories under those
    prefixes ("team-a/" covers team-a/app, not team-ab/app). On an existing writer, --repo adds prefixes
    ('*' widens it to every repository) and --delete adds the DELETE grant; a grant that changes nothing is
    refused. The node proxy's own identity can never be a writer.

    \b
    Examples:
      meshreg policy grant builds/kaniko
      meshreg policy grant ci/builder --repo team-a/ --repo shared/base/
      meshreg policy grant builds/kaniko --delete --apply --context kind-dev""")

revoke = _edit_command("revoke", "revoke", """Remove a writer, some of its prefixes, or its DELETE grant.

    \b
    Without --repo or --delete the writer is removed. --repo removes those prefixes; removing the last one
    removes the writer (revoking never widens a writer to every repository). A writer of every repository
    cannot be narrowed by revoke: revoke it, then grant it again with --repo. --delete removes only the
    DELETE grant.

    \b
    Examples:
      meshreg policy revoke ci/builder
      meshreg policy revoke ci/builder --repo shared/base/""")


@policy.command("list")
@config_option
@registry_option
@output_option()
def list_(config_path, registry, output):
    """Show the writers with their scopes and DELETE grants, the readers, the node proxy, the push proxy (its
    scope, namespace and Role), and the principals (trust domain applied) the policies name.

    \b
    Examples:
      meshreg policy list
      meshreg policy list -c prod.yaml -o json | jq '.writers[].principal'
    """
    from meshreg import config

    cfg = config.load(config_path)
    reg = cfg.get_registry(registry)
    data = _listing(cfg, reg)
    if output == "json":
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{cfg.source}: trust domain {cfg.trust_domain}, namespace {cfg.namespace}")
    if len(cfg.registries) > 1:
        others = ", ".join(r.name for r in cfg.registries if r is not reg)
        click.echo(f"registry {reg.name} ({reg.role}{', default' if reg.default else ''}); others: {others} "
                   "(--registry NAME)")
    click.echo("writers:" if data["writers"] else "writers: none (nobody can push)")
    for w in data["writers"]:
        scope = _scope(w["repositories"])
        proxy = "  [push proxy]" if data["pushProxy"] and w["serviceAccount"] == data["pushProxy"]["serviceAccount"] \
            else ""
        grant = "  DELETE only (retention)" if not w["push"] else ("  +DELETE" if w["delete"] else "")
        click.echo(f"  {w['serviceAccount']:30} {scope}{grant}  ({w['principal']}){proxy}")
    click.echo("readers:")
    for r in data["readers"]:
        shown = "every mesh identity" if r["reader"] == "*" else r["reader"]
        click.echo(f"  {shown:30} ({r['principal']})")
    np = data["nodeProxy"]
    click.echo(f"node proxy: reads only, on {np['hostIP']}:{np['port']} as {np['principal']}" if np["enabled"]
               else "node proxy: disabled")
    if "waypoint" in data:
        click.echo(f"waypoint: enforces the above for in-mesh clients; the registry pods admit only "
                   f"{data['waypoint']['principal']} (mesh: ambient)")
    _echo_push_proxy(data["pushProxy"])
    if "ingress" in data:
        _print_ingress(data["ingress"])


def _echo_push_proxy(pp: dict | None) -> None:
    if pp is None:
        click.echo("push proxy: none (to push from a laptop, enable pushProxy: see docs/pushing.md)")
        return
    click.echo(f"push proxy: {', '.join(pp['repositories'])} as {pp['serviceAccount']}, for whoever may port-forward "
               f"in namespace {pp['namespace']} (Role {pp['role']})")
    click.echo(f"  grant:   {pp['grant']}")
    click.echo(f"  connect: meshreg connect{pp['connect']}  (listens on localhost:{pp['port']})")


def _scope(prefixes) -> str:
    return "every repository" if prefixes == ["*"] else ", ".join(prefixes)


def _print_ingress(ing: dict) -> None:
    gw = ing["gateway"]
    click.echo(f"ingress {ing['host']}: through the gateway {gw['namespace']}/{gw['serviceAccount']}, which the "
               "registry lets write the clients' prefixes" + ("" if ing["clients"] else "; no clients, nobody passes"))
    for c in ing["clients"]:
        who = c.get("principal") or c["requestPrincipal"] + "".join(
            f", {k} in [{', '.join(v)}]" for k, v in c.get("claims", {}).items())
        click.echo(f"  {c['name']:20} {c['method']:4} writes {_scope(c['repositories'])}; reads "
                   f"{_scope(c['readRepositories'])}{'  +DELETE' if c['delete'] else ''}  ({who})")


def _served_registry(cfg, identity: str, registry: str | None) -> str | None:
    """Through the ingress, the registry it serves (the one --registry may only confirm)."""
    from meshreg.errors import UsageError
    from meshreg.policy.ingress import is_ingress_identity

    if not is_ingress_identity(identity) or cfg.ingress is None:
        return registry
    if registry not in (None, cfg.ingress.registry):
        raise UsageError(f"--registry {registry}: the ingress serves registry {cfg.ingress.registry!r} only")
    return cfg.ingress.registry


def _listing(cfg, reg) -> dict:
    from meshreg.config.mesh import WAYPOINT

    return {
        "trustDomain": cfg.trust_domain,
        "registry": {"name": reg.name, "role": reg.role, "default": reg.default, "publisher": reg.publisher},
        # A readonly registry's publisher is listed as its one writer: that is what the policies enforce.
        "writers": [{"serviceAccount": w.service_account, "repositories": list(w.repositories),
                     "delete": w.delete, "push": w.push, "principal": cfg.principal(w.service_account)}
                    for w in cfg.writers_of(reg)],
        "readers": [{"reader": r, "principal": "*" if r == "*" else cfg.principal(r)} for r in reg.readers],
        "nodeProxy": {"enabled": cfg.node_proxy.enabled, "port": reg.port,
                      "hostIP": cfg.node_proxy.host_ip, "principal": cfg.principal(cfg.node_proxy_identity)},
        **({"waypoint": {"name": WAYPOINT, "principal": cfg.principal(f"{cfg.namespace}/{WAYPOINT}")}}
           if cfg.mesh == "ambient" else {}),
        "pushProxy": _push_proxy_listing(cfg, reg),
        **_ingress_listing(cfg, reg),
    }


def _push_proxy_listing(cfg, reg) -> dict | None:
    """Who may push through the push proxy is RBAC: the Role in its namespace, bound with the recipe shown."""
    from meshreg.render.pushproxy import ROLE

    proxy = reg.push_proxy
    if proxy is None:
        return None
    return {"namespace": proxy.namespace, "serviceAccount": proxy.identity, "principal": cfg.principal(proxy.identity),
            "repositories": list(proxy.repositories), "port": proxy.port, "role": ROLE,
            "grant": f"kubectl -n {proxy.namespace} create rolebinding NAME --role={ROLE} --user=USER (or --group)",
            "connect": "" if reg.default else f" --registry {reg.name}"}


def _ingress_listing(cfg, reg) -> dict:
    from meshreg.policy.ingress import listing

    if cfg.ingress is None or cfg.ingress.registry != reg.name:
        return {}
    return {"ingress": listing(cfg.ingress, gateway_principal=cfg.principal(cfg.ingress.gateway.identity))}


@policy.command(context_settings={"ignore_unknown_options": False})
@config_option
@registry_option
@click.option("--as", "identity", required=True, metavar="IDENTITY",
              help="NS/SA (a mesh workload), node-proxy (a pull from a node), push-proxy (a push through "
                   "`meshreg connect`), anonymous (plain text), client:NAME (a client of spec.ingress) or external "
                   "(through the ingress without credentials).")
@output_option()
@click.option("--skip-waypoint", is_flag=True,
              help="Ambient mode: a client that does not go through the waypoint (it dials the pod IP, or has a "
                   "sidecar); ztunnel alone decides.")
@click.argument("what", metavar="METHOD PATH | push REPO[:TAG] | pull REPO[:TAG]", nargs=2)
@click.pass_context
def check(ctx, config_path, registry, identity, output, skip_waypoint, what):
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
    from meshreg import config
    from meshreg import render as rendering
    from meshreg.policy import evaluate as evaluating
    from meshreg.policy.requests import registry_requests

    cfg = config.load(config_path)
    reg = cfg.get_registry(_served_registry(cfg, identity, registry))
    requests = registry_requests(*what)
    objects = rendering.render(cfg)
    results = [(m, p, evaluating.evaluate(objects, identity=identity, method=m, path=p, trust_domain=cfg.trust_domain,
                                          registry=reg.name, skip_waypoint=skip_waypoint, ingress=cfg.ingress))
               for m, p in requests]
    allowed = all(d.allowed for _, _, d in results)
    if output == "json":
        click.echo(json.dumps({"decision": "ALLOW" if allowed else "DENY", "identity": identity, "requests": [
            {"method": m, "path": p, "decision": d.decision, "policy": d.policy, "rule": d.rule, "reason": d.reason,
             **({"hop": d.hop} if d.hop else {})} for m, p, d in results]}, indent=2))
    else:
        click.echo(f"{'ALLOW' if allowed else 'DENY'}: {identity} {' '.join(what)}")
        for m, p, d in results:
            decided = f"{d.policy} rule {d.rule}" if d.rule is not None else d.policy
            where = ", ".join(part for part in (d.hop, decided) if part) or "default"
            click.echo(f"  {d.decision:5} {m:6} {p}\n        by {where}: {d.reason}")
    ctx.exit(0 if allowed else 3)
