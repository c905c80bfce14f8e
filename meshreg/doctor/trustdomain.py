"""Check 3: the mesh's trust domain (mesh config `trustDomain`) is spec.trustDomain, or every writer is denied;
its aliases; and `pathNormalization`, which meshreg's path facts assume to be Istio's default (BASE)."""

from __future__ import annotations

from typing import Any

from meshreg.config import Config
from meshreg.doctor.facts import Facts
from meshreg.doctor.results import Result, fail, ok, warn

CHECK = "trust-domain"
ISTIO_DEFAULT = "cluster.local"
SAFE_NORMALIZATIONS = ("DEFAULT", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")


def check(facts: Facts) -> list[Result]:
    where, mesh = facts.mesh_config()
    if mesh is None:
        return [warn(CHECK, f"{where} not found: cannot read the mesh's trust domain",
                     "check that istiod runs for this revision; Istio's default trust domain is cluster.local")]
    return [trust_domain(facts.cfg, where, mesh), normalization(facts.cfg, where, mesh)]


def trust_domain(cfg: Config, where: str, mesh: dict[str, Any]) -> Result:
    actual = mesh.get("trustDomain") or ISTIO_DEFAULT
    aliases = [a for a in mesh.get("trustDomainAliases") or [] if a]
    also = f" (aliases: {', '.join(aliases)})" if aliases else ""
    if actual == cfg.trust_domain:
        return ok(CHECK, f"mesh trust domain {actual} matches spec.trustDomain{also}")
    if cfg.trust_domain in aliases:
        return warn(CHECK, f"spec.trustDomain {cfg.trust_domain} is an alias of the mesh trust domain {actual}",
                    f"policies match through the alias; set spec.trustDomain: {actual} in the config")
    return fail(CHECK, f"mesh trust domain is {actual} ({where}) but spec.trustDomain is {cfg.trust_domain}: "
                       "no principal in the policies matches, so every writer is denied",
                f"set spec.trustDomain: {actual} in the config, then meshreg up")


def normalization(cfg: Config, where: str, mesh: dict[str, Any]) -> Result:
    mode = ((mesh.get("pathNormalization") or {}).get("normalization") or "DEFAULT").upper()
    if mode in SAFE_NORMALIZATIONS:
        return ok(CHECK, f"path normalization {mode} (meshreg's path rules hold for it)")
    scoped = any(w.scoped for reg in cfg.registries for w in cfg.writers_of(reg))
    text = (f"path normalization is {mode} ({where}): Envoy then passes `..` segments to the registry, which "
            "resolves them")
    fix = "remove pathNormalization from the mesh config (Istio's default, BASE, is what meshreg assumes)"
    if scoped:
        return fail(CHECK, text + ", so a scoped writer can write outside its prefixes", fix)
    return warn(CHECK, text, fix)
