"""`meshreg policy`: list who the policies let in, check requests against the rendered policies offline, and grant or
revoke writers in the config file (whose AuthorizationPolicies `--apply` then publishes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from meshreg import config
from meshreg import render as rendering
from meshreg.cluster.api import Object
from meshreg.config import DEFAULT_FILE, Config, Writer
from meshreg.config.source import decode
from meshreg.errors import ConfigError, UsageError
from meshreg.policy import evaluate as evaluating
from meshreg.policy.ingress import is_ingress_identity
from meshreg.policy.listing import Listing
from meshreg.policy.listing import listing as listing_of
from meshreg.policy.requests import registry_requests
from meshreg.policy.rules import Decision

__all__ = ["CheckReport", "EditReport", "RequestDecision", "authorization_policies", "check", "edit", "listing"]


def listing(cfg: Config, *, registry: str | None) -> Listing:
    """Who the policies let in at `registry` (None: the default registry)."""
    return listing_of(cfg, cfg.get_registry(registry))


@dataclass(frozen=True)
class RequestDecision:
    """One request a check sends, and what the policies decided."""

    method: str
    path: str
    decision: Decision


@dataclass(frozen=True)
class CheckReport:
    """`policy check`: may `identity` send `what` (METHOD PATH, push REPO[:TAG] or pull REPO[:TAG])?"""

    identity: str
    what: tuple[str, str]
    requests: tuple[RequestDecision, ...]

    @property
    def allowed(self) -> bool:
        """Every request allowed."""
        return all(r.decision.allowed for r in self.requests)


def check(cfg: Config, *, identity: str, what: tuple[str, str], registry: str | None,
          skip_waypoint: bool) -> CheckReport:
    """Evaluate every request of `what` as `identity` sends it, against the policies rendered from `cfg`."""
    reg = cfg.get_registry(served_registry(cfg, identity, registry))
    requests = registry_requests(*what)
    objects = rendering.render(cfg)
    return CheckReport(identity=identity, what=what, requests=tuple(
        RequestDecision(method=m, path=p, decision=evaluating.evaluate(
            objects, identity=identity, method=m, path=p, trust_domain=cfg.trust_domain, registry=reg.name,
            skip_waypoint=skip_waypoint, ingress=cfg.ingress))
        for m, p in requests))


def served_registry(cfg: Config, identity: str, registry: str | None) -> str | None:
    """Through the ingress, the registry it serves (the one --registry may only confirm)."""
    if not is_ingress_identity(identity) or cfg.ingress is None:
        return registry
    if registry not in (None, cfg.ingress.registry):
        raise UsageError(f"--registry {registry}: the ingress serves registry {cfg.ingress.registry!r} only")
    return cfg.ingress.registry


@dataclass(frozen=True)
class EditReport:
    """A grant or revoke written to the config file: the writer before and after (None: not a writer); with
    `changed` False the file already said so and was left as it was (`note` says why)."""

    path: str
    identity: str
    before: Writer | None
    after: Writer | None
    note: str
    changed: bool = True


def edit(action: Literal["grant", "revoke"], *, config_path: str | None, identity: str,
         repositories: tuple[str, ...], delete: bool, registry: str | None) -> EditReport:
    """Grant or revoke in the config file (keeping its comments and layout), written atomically."""
    from meshreg.config import editing  # the writers-list editor, for grant and revoke only (check and list skip it)

    path = config_file(config_path)
    with open(path, "rb") as f:
        text = decode(f.read(), path)
    change = editing.grant if action == "grant" else editing.revoke
    done = change(text, name=path, identity=identity, repositories=repositories, delete=delete, registry=registry)
    if done.changed:
        editing.write_atomically(path, done.text)
    return EditReport(path=path, identity=identity, before=done.before, after=done.after, note=done.note,
                      changed=done.changed)


def config_file(config_path: str | None) -> str:
    """The file to edit: the one given, else ./meshreg.yaml; it must exist (there is nothing to edit otherwise)."""
    path = config_path or DEFAULT_FILE
    if not os.path.exists(path):
        hint = "" if config_path else " (run `meshreg init` first)"
        raise ConfigError(f"{path}: no such file{hint}")
    return path


def authorization_policies(report: EditReport) -> list[Object]:
    """Only the AuthorizationPolicies, rendered from the edited file: what `--apply` publishes."""
    return [o for o in rendering.render(config.load(report.path)) if o["kind"] == "AuthorizationPolicy"]
