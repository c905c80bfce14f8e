"""`meshreg certs`: the ingress's client CA (init), client certificates (issue, list) and their revocation."""

from __future__ import annotations

import datetime
import os

import click

from meshreg.cli.options import (
    apply_only,
    cluster_options,
    completer,
    config_option,
    echo_report,
    load_config,
    moved_option,
    only_with_apply,
    output_option,
)
from meshreg.cluster.api import Object
from meshreg.config import Config
from meshreg.config.model import Client, Ingress
from meshreg.errors import UsageError

mtls_clients = completer("mtls_clients")  # completes for a shell that asks; loads nothing for a command that runs

EXIT_CODES = """\b
Exit codes: 0 done, 2 bad input (nothing written)."""


@click.group()
def certs() -> None:
    """Client certificates for writers outside the cluster (spec.ingress clients with method: mtls).

    \b
    The CA lives in the directory spec.ingress.clientCA names (default ingress-ca, next to the config):
    its key (0600) never leaves that directory; its certificate and revocation list are rendered into the
    gateway's <credentialName>-cacert Secret, so `meshreg up` (or render) publishes them.

    \b
    Examples:
      meshreg certs init
      meshreg certs issue airgap-loader --server-ca corp-root.pem
      meshreg certs list
      meshreg certs revoke airgap-loader --apply
    """


def _ingress(config_path: str | None) -> tuple[Config, Ingress]:
    cfg = load_config(config_path)
    if cfg.ingress is None:
        raise UsageError(f"{cfg.source}: no spec.ingress: add one first (host, credentialName, clients; "
                         "see docs/ingress.md)")
    return cfg, cfg.ingress


@certs.command(help="""Create the client CA in spec.ingress.clientCA (refuses to overwrite one).

    \b
    Writes ca.crt, ca.key (0600, never printed), ca.crl (empty) and index.json, with a .gitignore that keeps
    the key and issued client keys out of Git. ca.crt and ca.crl are public: commit them if you render in CI.

    \b
    Examples:
      meshreg certs init
      meshreg certs init -c prod.yaml --days 3650

    """ + EXIT_CODES)
@config_option
@click.option("--days", type=click.IntRange(1, 36500), default=1825, show_default=True,
              help="How long the CA is valid (its CRL stays valid as long).")
def init(config_path: str | None, days: int) -> None:
    from meshreg.pki.authority import Authority

    _, ing = _ingress(config_path)
    authority = Authority.create(ing.client_ca, domain=ing.host, days=days)
    click.echo(f"created the client CA for {ing.host} in {ing.client_ca} (valid until "
               f"{authority.cert.not_valid_after_utc.date()}); the key is {authority.directory / 'ca.key'} (0600)")
    click.echo("next: meshreg certs issue NAME for each mtls client, then meshreg up", err=True)


@certs.command(help="""Issue a client certificate for NAME, an mtls client of spec.ingress.

    \b
    The certificate names the client by its URI SAN spiffe://<host>/client/<NAME>, which Istio shows to
    AuthorizationPolicies as principal <host>/client/<NAME>. Files go to DIR/<host>/ (docker's certs.d layout):
    client.cert, client.key (0600) and, with --server-ca, ca.crt: the CA of the registry's *server*
    certificate, for clients that do not already trust it. The key is never printed.

    \b
    Examples:
      meshreg certs issue airgap-loader
      meshreg certs issue ci --days 30 --output-dir ./certs.d --server-ca corp-root.pem
      skopeo copy --dest-cert-dir ingress-ca/clients/ci/registry.example.com \
          oci:img docker://registry.example.com/ci/app

    """ + EXIT_CODES)
@click.argument("name", shell_complete=mtls_clients)
@config_option
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True,
              help="How long the certificate is valid (never past the CA).")
@click.option("--output-dir", "out", metavar="DIR", default=None,
              help="A certs.d directory to write into [default: <clientCA>/clients/NAME].")
@moved_option("-o", "--output", instead="the certs.d directory as --output-dir DIR")
@click.option("--server-ca", metavar="FILE", default=None, help="The server certificate's CA, written as ca.crt.")
@click.option("--force", is_flag=True, help="Issue even if NAME has a valid certificate; overwrite files in DIR.")
def issue(name: str, config_path: str | None, days: int, out: str | None, server_ca: str | None,
          force: bool) -> None:
    from meshreg.pki import certsd
    from meshreg.pki.authority import Authority, client_uri

    cfg, ing = _ingress(config_path)
    _mtls_client(cfg, ing, name)
    root = out or os.path.join(ing.client_ca, "clients", name)
    authority = Authority.open(ing.client_ca)
    ca_bundle = certsd.read_server_ca(server_ca) if server_ca else None
    authority.refuse_existing(name, force=force)  # every refusal comes before anything is written
    certsd.check_free(root, ing.address, force=force, spent=authority.spent)
    previous = authority.valid(name)
    issued, cert, key = authority.issue(name, uri=client_uri(ing.host, name), days=days, force=force)
    written = certsd.write(root, ing.address, cert=cert, key=key, server_ca=ca_bundle)
    click.echo(f"issued {client_uri(ing.host, name)}: serial {issued.serial}, valid until {issued.not_after}")
    for path in written:
        click.echo(f"  wrote {path}{' (0600)' if path.name == certsd.KEY else ''}")
    for old in previous:
        click.echo(f"note: the previous certificate (serial {old.serial}) stays valid until {old.not_after}; "
                   f"meshreg certs revoke {name} --serial {old.serial} revokes it", err=True)
    click.echo(f"use: skopeo copy --dest-cert-dir {certsd.directory(root, ing.address)} ... "
               f"docker://{ing.address}/REPO; docker and containerd: copy that directory to "
               f"/etc/docker/certs.d/{ing.address}/ or /etc/containerd/certs.d/{ing.address}/", err=True)


def _mtls_client(cfg: Config, ing: Ingress, name: str) -> Client:
    """The mtls client NAME; UsageError when the config has none: a certificate for it would open nothing."""
    client = ing.client(name)
    if client is None or client.method != "mtls":
        mtls = ", ".join(c.name for c in ing.clients if c.method == "mtls") or "none"
        raise UsageError(f"{name!r} is not an mtls client of spec.ingress in {cfg.source} (mtls clients: {mtls}); "
                         "a certificate for a name the policies do not list would open nothing")
    return client


@certs.command("list")
@config_option
@output_option
def list_(config_path: str | None, output: str) -> None:
    """Every certificate the CA issued (valid, expired or revoked), and mtls clients without a valid one.

    \b
    Examples:
      meshreg certs list
      meshreg certs list -o json | jq '.certificates[] | select(.status == "valid")'
    """
    from meshreg.cli.output import certs as formats
    from meshreg.operations.certs import listing as certificates

    _, ing = _ingress(config_path)
    found = certificates(ing, now=datetime.datetime.now(datetime.timezone.utc))
    echo_report(output, text=lambda: formats.text(found), data=lambda: formats.data(found))


@certs.command(help="""Revoke NAME's certificates (or the one with --serial) and re-sign the CRL.

    \b
    The gateway refuses revoked certificates once the new CRL reaches it: `meshreg up`, or --apply here,
    updates the <credentialName>-cacert Secret (Istio 1.19+ reads its ca.crl). To take away a client for
    good, also remove it from spec.ingress.clients: its name then opens nothing, whatever certificate it holds.

    \b
    Examples:
      meshreg certs revoke ci
      meshreg certs revoke ci --serial 3f2a... --apply --context prod

    """ + EXIT_CODES)
@click.argument("name", shell_complete=mtls_clients)
@click.option("--serial", metavar="HEX", default=None, help="Only this certificate (see `meshreg certs list`).")
@config_option
@click.option("--apply", "apply", is_flag=True, help="Then server-side apply the CA Secret with the new CRL.")
@cluster_options
def revoke(name: str, serial: str | None, config_path: str | None, apply: bool, kubeconfig: str | None,
           context: str | None) -> None:
    from meshreg.pki.authority import Authority

    only_with_apply(apply=apply, context=context)
    _, ing = _ingress(config_path)
    revoked = Authority.open(ing.client_ca).revoke(name, serial=serial)
    for item in revoked:
        click.echo(f"revoked {item.name}: serial {item.serial} (was valid until {item.not_after})")
    if apply:
        apply_only([_ca_secret(config_path)], kubeconfig=kubeconfig, context=context)
    else:
        click.echo("next: meshreg up (or meshreg certs revoke --apply) to publish the new CRL", err=True)


def _ca_secret(config_path: str | None) -> Object:
    """The gateway's CA Secret, rendered from the directory just updated (the config is read again for its CRL)."""
    from meshreg.render import ingress

    return ingress.ca_secret(load_config(config_path))
