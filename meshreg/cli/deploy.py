"""The commands that deploy to a cluster: `meshreg up` and `down`."""

from __future__ import annotations

import sys

import click

from meshreg import render as rendering
from meshreg.cli.options import cluster_options, config_option, prepare, say
from meshreg.cluster import ambient, enforcement, parallel, runtimeconfig
from meshreg.doctor import preflight
from meshreg.cluster import apply as applying
from meshreg.cluster import live as lives
from meshreg.cluster import pushproxy as pushproxies
from meshreg.cluster import remove as removing
from meshreg.cluster import scope as scopes
from meshreg.cluster import wait as waiting
from meshreg.config.mesh import WAYPOINT
from meshreg.errors import ClusterError, UsageError
from meshreg.render import hosting


def _workloads(cfg) -> list[tuple]:
    out = [("apps/v1", "Deployment", reg.name) for reg in cfg.registries]
    if cfg.node_proxy.enabled:
        out.append(("apps/v1", "DaemonSet", "node-proxy"))
    if cfg.mesh == "ambient":  # istiod deploys the waypoint from its Gateway, under the Gateway's name
        out.append(("apps/v1", "Deployment", WAYPOINT))
    if cfg.node_proxy.runtime_config.enabled:
        out.append(runtimeconfig.WORKLOAD)
    return out


def _push_proxy_namespaces(cfg) -> list[str]:
    return [reg.push_proxy.namespace for reg in cfg.registries if reg.push_proxy]


@click.command()
@config_option
@cluster_options
@click.option("--dry-run", is_flag=True, help="Server-side dry run: print what would be created, changed or "
                                              "pruned, and change nothing.")
@click.option("--no-wait", is_flag=True, help="Do not wait for the registry and node proxy to be ready.")
@click.option("--timeout", type=click.FloatRange(min=1), default=300, show_default=True, metavar="SECONDS",
              help="How long to wait for the rollout.")
@click.option("--adopt", is_flag=True, help="Take over existing objects with meshreg's names that meshreg "
                                            "does not manage (otherwise they are reported and left alone); never "
                                            "another meshreg instance's.")
@click.option("--force-conflicts", is_flag=True, help="Take over fields another field manager owns.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@click.option("--skip-checks", is_flag=True, help="Do not run the preflight checks (meshreg doctor's FAIL-level "
                                                  "checks) before applying.")
def up(config_path, kubeconfig, context, dry_run, no_wait, timeout, adopt, force_conflicts, quiet, skip_checks):
    """Deploy (or update) the registry, node proxy and policies to the cluster, prune what the config no longer
    renders, and wait until the rollout is done and Istio enforces the policies on every pod.

    Nothing changes unless the API server accepts every object in a server-side dry run first (admission, quota,
    webhooks, schemas); every refusal is reported at once, each naming its object.

    \b
    Examples:
      meshreg up
      meshreg up --dry-run            # what would change, changing nothing
      meshreg up --skip-checks        # no preflight (see meshreg doctor)
      meshreg up -c prod.yaml --context prod --timeout 600
    """
    cfg, objects, cluster = prepare(config_path, kubeconfig, context)
    scope, live = _checks_and_live(cluster, cfg, objects, skip_checks=skip_checks)
    pushproxies.check_alone(cluster=cluster, instance=cfg.name, namespaces=_push_proxy_namespaces(cfg))
    if dry_run:
        click.echo(f"server dry run on {cluster.server}; nothing is changed")
    try:
        outcomes = applying.apply(manifests=objects, cluster=cluster, live=live, prune=scope, dry_run=dry_run,
                                  force_conflicts=force_conflicts, adopt=adopt, on_outcome=_print_outcome)
    except applying.NotOwned as e:
        raise ClusterError(_ownership_advice(e, cfg)) from e
    finally:
        for warning in dict.fromkeys(cluster.warnings):  # the server's own warnings (Pod Security, deprecations)
            say(f"warning: {warning}")
    click.echo(_summary(outcomes, dry_run=dry_run))
    _notes(outcomes, cfg)
    if not dry_run:
        _verify(cfg, objects, cluster, applied=len(outcomes), no_wait=no_wait, timeout=timeout, quiet=quiet)
        click.echo(_addresses(cfg))
        for line in rendering.notices(cfg, writers=False):  # the addresses above already name the writers
            say(line)


def _checks_and_live(cluster, cfg, objects, *, skip_checks):
    """The checks before any write, and the read of what exists (and of where to prune), sent together: neither
    depends on the other. Returns the prune scope and what exists."""
    def read():
        scope = scopes.live(cluster, cfg, objects)
        return scope, lives.read(manifests=objects, cluster=cluster, scope=scope)

    tasks = [lambda: [] if skip_checks else preflight.preflight(cluster=cluster, cfg=cfg, manifests=objects), read]
    (_, warnings, failed), (_, found, unread) = parallel.each(lambda task: task(), tasks)
    if failed:
        raise failed
    for warning in warnings:
        say(f"warning: {warning}")
    if unread:
        raise unread
    return found


def _ownership_advice(e: applying.NotOwned, cfg) -> str:
    """The refusal, and what to do when the owner is another meshreg instance."""
    published = f"ConfigMap {scopes.HOSTING_NAMESPACE}/local-registry-hosting"
    theirs = [o for objs in e.others.values() for o in objs]
    advice = []
    if published in theirs:
        advice.append("only one instance can publish kube-public/local-registry-hosting: set "
                      "spec.localRegistryHosting.publish: false in this config (its addresses are then published "
                      f"in {scopes.HOSTING_NAMESPACE}/{hosting.index_name(cfg)})")
    if [o for o in theirs if o != published]:
        advice.append("two instances cannot share objects: give this one its own spec.namespace and node-proxy port")
    if theirs:
        advice.append("--adopt never takes objects from another instance; see docs/operations.md")
    return "; ".join([str(e), *advice])


def _notes(outcomes, cfg) -> None:
    for outcome in outcomes:
        if outcome.note:
            say(outcome.note)
    unchecked = [o for o in outcomes if not o.checked]
    if unchecked:
        say(f"{len(unchecked)} objects were not checked by the server: namespace {cfg.namespace} does not exist "
            "yet, so admission, quota and webhooks cannot run on them in a dry run (meshreg up creates the "
            "namespace first and checks them before it changes anything else)")


def _verify(cfg, objects, cluster, *, applied, no_wait, timeout, quiet) -> None:
    """Wait for the rollout, then make sure Istio enforces on every pod: no success without enforcement."""
    if no_wait:
        say("not waiting for the rollout, so sidecar injection is not verified; meshreg status checks it")
        return
    try:
        waiting.wait(cluster=cluster, namespace=cfg.namespace, workloads=_workloads(cfg), timeout=timeout,
                     progress=waiting.Progress(quiet=quiet))
        for namespace in _push_proxy_namespaces(cfg):
            waiting.wait(cluster=cluster, namespace=namespace, workloads=[("apps/v1", "Deployment", "push-proxy")],
                         timeout=timeout, progress=waiting.Progress(quiet=quiet))
        enforcement.check(cluster=cluster, manifests=objects)
    except ClusterError as e:
        raise ClusterError(f"{e}{_waypoint_note(cluster, cfg, objects)} (all {applied} objects were applied)") from e


def _waypoint_note(cluster, cfg, objects) -> str:
    """Why the waypoint is missing, from its Gateway's status, when istiod has not programmed it."""
    waypoint = ambient.status(cluster=cluster, namespace=cfg.namespace, manifests=objects)
    if waypoint is None or waypoint["programmed"]:
        return ""
    return f"; Gateway {waypoint['name']} is not programmed by istiod: {waypoint['message']}"


def _print_outcome(outcome) -> None:
    click.echo(f"{outcome.action:<11} {outcome}")


def _summary(outcomes, *, dry_run) -> str:
    counts = {}
    for o in outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
    text = ", ".join(f"{n} {action}" for action, n in counts.items())
    return f"{'dry run: ' if dry_run else ''}{text or 'nothing to do'}"


def _addresses(cfg) -> str:
    lines = []
    for reg in sorted(cfg.registries, key=lambda r: (not r.default, r.name)):
        if len(cfg.registries) > 1:
            lines.append(f"registry {reg.name} ({reg.role}{', default' if reg.default else ''}):")
        pull = f"localhost:{reg.port}" if cfg.node_proxy.enabled else "none (nodeProxy is disabled)"
        writers = ", ".join(w.service_account for w in cfg.writers_of(reg)) or (
            "no writers: nobody can push; run meshreg policy grant NS/SA" if reg.role == "images"
            else f"nobody ({reg.role})")
        lines += [f"push (in-cluster writers): {cfg.service_host(reg)}",
                  f"pull (pod specs):          {pull}",
                  f"writers:                   {writers}"]
        if reg.push_proxy:
            flag = "" if reg.default else f" --registry {reg.name}"
            lines.append(f"push (from a laptop):      meshreg connect{flag}, then localhost:{reg.push_proxy.port} "
                         f"(RBAC: Role meshreg-connect in namespace {reg.push_proxy.namespace})")
        if cfg.ingress and cfg.ingress.registry == reg.name:
            clients = ", ".join(c.name for c in cfg.ingress.clients) or "none"
            lines.append(f"push (ingress clients):    {cfg.ingress.address} (clients: {clients})")
    return "\n".join(lines)


@click.command()
@config_option
@cluster_options
@click.option("--purge", is_flag=True, help="Also delete the registry's data (its PVC) and its namespace.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before --purge deletes data.")
def down(config_path, kubeconfig, context, purge, yes):
    """Remove what `meshreg up` applied, in reverse order. Keeps the PVC (the images) and its namespace unless
    --purge. Safe to run twice.

    \b
    Examples:
      meshreg down
      meshreg down --purge --yes      # everything, images included
    """
    cfg, objects, cluster = prepare(config_path, kubeconfig, context)
    if purge and not yes:
        if not sys.stdin.isatty():
            raise UsageError("--purge deletes the registry's images; add --yes to confirm (no terminal to ask on)")
        namespaces = ", ".join([cfg.namespace, *_push_proxy_namespaces(cfg)])
        click.confirm(f"Delete PersistentVolumeClaim {cfg.namespace}/registry-data (every image) and namespace(s) "
                      f"{namespaces} on {cluster.server}?", abort=True, err=True)
    outcomes = removing.remove(manifests=objects, cluster=cluster, purge=purge, on_outcome=_print_outcome)
    note = runtimeconfig.after_down(cluster=cluster, cfg=cfg, outcomes=outcomes)
    if note:
        say(note)
    click.echo(_summary(outcomes, dry_run=False))

