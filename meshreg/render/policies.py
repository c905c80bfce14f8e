"""The registry's AuthorizationPolicies: DENY with negative matches, ALLOW with positive ones.

Istio evaluates DENY before ALLOW, and any ALLOW policy on a workload denies what no ALLOW rule matches.
Path rules alone are not trusted to keep a writer inside its prefixes: Envoy forwards `%2F` encoded and the
registry decodes it, so `/v2/team-b%2Fapp/...` slips past a positive `/v2/team-b/*`. Every write restriction is
therefore a DENY of writes *outside* the allowed paths (`notPaths`), which an encoded path cannot escape.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from meshreg.config import Config, Registry, Writer
from meshreg.objects import Object
from meshreg.render import policysize
from meshreg.render.labels import COMPONENT, REGISTRY, is_ambient, metadata, registry_pods

READ = ["GET", "HEAD"]
WRITE = ["PATCH", "POST", "PUT"]
_Key = TypeVar("_Key", bound=Hashable)


def repository_paths(prefixes: Iterable[str]) -> list[str]:
    """Repository prefixes as Istio path patterns: "team-a/" covers /v2/team-a/..."""
    return [f"/v2/{p}*" for p in prefixes]


def _policy(cfg: Config, reg: Registry, suffix: str, action: str, rules: list[Object]) -> Object:
    meta = metadata(cfg, f"{reg.name}-{suffix}", extra={COMPONENT: "registry", REGISTRY: reg.name})
    return {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy", "metadata": meta,
            "spec": {**attachment(cfg, reg), "action": action, "rules": rules}}


def attachment(cfg: Config, reg: Registry) -> Object:
    """Where the registry's L7 policies are enforced: by its sidecar (a selector), or in ambient mode by its
    waypoint (targetRefs to its Service). Which rules they hold does not depend on it."""
    if is_ambient(cfg):
        from meshreg.render import ambient

        return ambient.target_refs(reg)
    return {"selector": {"matchLabels": registry_pods(cfg, reg)}}


def _from(principals: Iterable[str]) -> list[Object]:
    return [{"source": {"principals": sorted(principals)}}]


def _groups(writers: Iterable[Writer], key: Callable[[Writer], _Key]) -> dict[_Key, list[Writer]]:
    """Writers grouped by `key(writer)`, groups in sorted order, so output does not depend on listing order."""
    groups: dict[_Key, list[Writer]] = {}
    for w in writers:
        groups.setdefault(key(w), []).append(w)
    return dict(sorted(groups.items()))


def deny_write_rules(cfg: Config, reg: Registry) -> list[Object]:
    writers = cfg.writers_of(reg)
    return [_everyone_else(cfg, writers), *_outside_prefixes(cfg, writers), *_method_limits(cfg, writers)]


def _everyone_else(cfg: Config, writers: tuple[Writer, ...]) -> Object:
    """No write from anyone who is not a writer."""
    principals = [cfg.principal(w.service_account) for w in writers]
    rule: Object = {"to": [{"operation": {"notMethods": list(READ)}}]}
    if principals:
        rule = {"from": [{"source": {"notPrincipals": sorted(principals)}}], **rule}
    return rule


def _outside_prefixes(cfg: Config, writers: tuple[Writer, ...]) -> list[Object]:
    """No write outside its repository prefixes from a scoped writer, one rule per set of prefixes."""
    scoped = _groups([w for w in writers if w.scoped], lambda w: w.repositories)
    return [{"from": _from(cfg.principal(w.service_account) for w in group),
             "to": [{"operation": {"notMethods": list(READ), "notPaths": repository_paths(prefixes)}}]}
            for prefixes, group in scoped.items()]


def _method_limits(cfg: Config, writers: tuple[Writer, ...]) -> list[Object]:
    """No DELETE without the grant, and nothing but DELETE from an identity that may only delete."""
    rules = []
    no_delete = [cfg.principal(w.service_account) for w in writers if not w.delete]
    if no_delete:
        # Everything but reads and the upload/manifest methods: DELETE, and any method Envoy does not know.
        rules.append({"from": _from(no_delete), "to": [{"operation": {"notMethods": READ + WRITE}}]})
    delete_only = [cfg.principal(w.service_account) for w in writers if not w.push]
    if delete_only:
        # An identity that may only delete (meshreg's retention): no uploads, no manifests, no unknown methods.
        rules.append({"from": _from(delete_only), "to": [{"operation": {"notMethods": READ + ["DELETE"]}}]})
    return rules


def read_rules(cfg: Config, reg: Registry) -> list[Object]:
    if "*" in reg.readers:
        principals = ["*"]  # any authenticated mesh identity, the node proxy included
    else:
        principals = [cfg.principal(r) for r in reg.readers]  # "team-a/*" -> <td>/ns/team-a/sa/*
        principals.append(cfg.principal(cfg.node_proxy_identity))
    return [{"from": _from(set(principals)), "to": [{"operation": {"methods": list(READ)}}]}]


def _write_methods(writer: Writer) -> list[str]:
    if not writer.push:
        return ["DELETE"]
    return sorted(WRITE + ["DELETE"]) if writer.delete else list(WRITE)


def write_rules(cfg: Config, reg: Registry) -> list[Object]:
    rules: list[Object] = []
    for (prefixes, *_), group in _groups(cfg.writers_of(reg),
                                         lambda w: (w.repositories, w.delete, not w.push)).items():
        write: Object = {"methods": _write_methods(group[0])}
        if prefixes != ("*",):
            write["paths"] = repository_paths(prefixes)
        rules.append({"from": _from(cfg.principal(w.service_account) for w in group),
                      "to": [{"operation": {"methods": list(READ)}}, {"operation": write}]})
    return rules


def registry_policies(cfg: Config, reg: Registry, *, max_bytes: int = policysize.MAX_OBJECT_BYTES) -> list[Object]:
    """The registry's policies; each kind of rule packed into as many objects as its size needs
    (`<name>-deny-writes`, then `<name>-deny-writes-2`, ...)."""
    out = []
    for suffix, action, rules in (("deny-writes", "DENY", deny_write_rules(cfg, reg)),
                                  ("allow-reads", "ALLOW", read_rules(cfg, reg)),
                                  ("allow-writes", "ALLOW", write_rules(cfg, reg))):
        def wrap(chunk: list[Object], index: int, suffix: str = suffix, action: str = action) -> Object:
            return _policy(cfg, reg, suffix + (f"-{index + 1}" if index else ""), action, chunk)
        out += policysize.pack(rules, wrap=wrap, max_bytes=max_bytes,
                               what=f"{cfg.source}: registry {reg.name}")
    return out
