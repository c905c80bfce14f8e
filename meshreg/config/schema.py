"""The JSON Schema (draft 2020-12) of `meshreg.yaml`, for editors (`meshreg schema`, the modeline `init` writes).

Built from the reader's own key tables (registries, storage, gc, ingress, push proxy, runtime config, spec), with their
defaults, so a key added to or removed from a table changes the schema or fails here (`SchemaDrift`) at once; the few
mappings the reader declares inline are declared below, and tests/config/test_schema.py runs the reader to prove that
every mapping it reads has exactly the schema's keys. Names use the reader's own patterns (`names`).

The schema is looser than the reader where JSON Schema cannot say what the reader checks (a writer listed twice, a
namespace of its push proxy, ports shared by two registries, ...): the reader stays the authority, the schema only
never rejects a config the reader accepts. It uses only keywords that mean the same in draft-07, so editors whose
validator knows only draft-07 (yaml-language-server) check it alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshreg import __version__, retention
from meshreg.config import (
    audit,
    gc,
    ingress,
    mesh,
    names,
    pushproxy,
    registries,
    runtimeconfig,
    scheduling,
    spec,
    storage,
)
from meshreg.config.model import (
    API_VERSION,
    INGRESS_METHODS,
    KIND,
    ROLES,
    SCHEMA_FILE,
    Audit,
    LocalRegistryHosting,
    NodeProxy,
)
from meshreg.config.reader import REQUIRED

__all__ = ["SCHEMA_FILE", "SchemaDrift", "schema"]

Schema = dict[str, Any]
DIALECT = "https://json-schema.org/draft/2020-12/schema"

# The mappings the reader declares where it reads them (spec.py, registries.py, gc.py, ingress.py): the same keys and
# defaults, checked against the reader by tests/config/test_schema.py.
TOP: dict[str, object] = {"apiVersion": REQUIRED, "kind": REQUIRED, "metadata": REQUIRED, "spec": {}}
METADATA: dict[str, object] = {"name": REQUIRED}
NODE_PROXY: dict[str, object] = {"enabled": True, "port": None, "hostIP": NodeProxy().host_ip, "resources": None,
                                 "runtimeConfig": None}
HOSTING: dict[str, object] = {"host": None, "help": LocalRegistryHosting.help, "publish": True}
WRITER: dict[str, object] = {"serviceAccount": REQUIRED, "repositories": ["*"], "delete": False}
RESOURCES: dict[str, object] = {"requests": {}, "limits": {}}
AMOUNTS: dict[str, object] = {"cpu": None, "memory": None, "ephemeral-storage": None}
STORAGE: dict[str, object] = {"size": None, "storageClassName": None, "s3": None}
RETENTION: dict[str, object] = {"rules": REQUIRED, "protectedTags": []}
MIRROR: dict[str, object] = {"upstream": None, "credentialsSecret": None, "extraHosts": []}
ISSUER: dict[str, object] = {"issuer": REQUIRED, "audiences": REQUIRED, "jwks": None, "jwksUri": None}
AUDIT: dict[str, object] = {"enabled": Audit().enabled, "provider": Audit().provider,
                            "keepProviders": list(Audit().keep_providers)}


class SchemaDrift(AssertionError):
    """A reader's key table and the schema's types disagree: a key without a type, or a type without a key."""


def _pattern(regex: str, maxlength: int | None = None) -> Schema:
    out: Schema = {"type": "string", "pattern": f"^(?:{regex})$"}
    return {**out, "maxLength": maxlength} if maxlength else out


LABEL = _pattern(names._LABEL.pattern, 63)
SUBDOMAIN = _pattern(names._SUBDOMAIN.pattern, 253)
_SA = f"{names._LABEL.pattern}/{names._SUBDOMAIN.pattern}"
IDENTITY = {**_pattern(_SA), "description": "A workload identity NS/SA: namespace/ServiceAccount."}
READER = {**_pattern(rf"\*|{names._LABEL.pattern}/(?:\*|{names._SUBDOMAIN.pattern})"),
          "description": "\"*\" (every mesh identity), NS/* or NS/SA."}
PREFIX = {**_pattern(rf"\*|{names._REPOSITORY.pattern}/?"),
          "description": "A repository prefix: \"team-a/\" covers team-a and everything under team-a/; \"*\" covers "
                         "every repository."}
QUANTITY = {**_pattern(names._QUANTITY.pattern.replace(r"\d", "[0-9]")),
            "description": "A Kubernetes quantity, e.g. 10Gi, 500Mi, 250m."}
STRING: Schema = {"type": "string"}
BOOLEAN: Schema = {"type": "boolean"}
DURATION = {**_pattern(f"(?:{retention._DURATION.pattern})+".replace(r"\d", "[0-9]")),
            "description": "A duration in days, hours and minutes, e.g. 14d, 36h, 1d12h."}


def _port(low: int) -> Schema:
    return {"type": "integer", "minimum": low, "maximum": 65535,
            "not": {"enum": sorted(names.ISTIO_RESERVED_PORTS)}}


def _null(schema: Schema) -> Schema:
    """`schema`, or null (the reader takes null as the key's default)."""
    return {"anyOf": [schema, {"type": "null"}]}


def _list(item: Schema, *, unique: bool = True, min_items: int = 0) -> Schema:
    out: Schema = {"type": "array", "items": item}
    if unique:
        out["uniqueItems"] = True
    return {**out, "minItems": min_items} if min_items else out


def _map(values: Schema, *, description: str) -> Schema:
    return {"type": "object", "additionalProperties": values, "description": description}


def _default(value: object) -> Schema:
    """A table's default as the schema's `default`, where it is a value (not REQUIRED, null, or an empty mapping
    whose keys have defaults of their own)."""
    if value is REQUIRED or value is None or value == {}:
        return {}
    return {"default": list(value) if isinstance(value, tuple) else value}


def _object(keys: Mapping[str, object], types: Mapping[str, Schema], description: str, *,
            nullable: bool = True) -> Schema:
    """A mapping with exactly the keys of the reader's table `keys` (its order, its defaults, REQUIRED ones
    required); each typed by `types`. A mapping the reader reads with `Reader.mapping` takes null as empty."""
    if list(keys) != list(types):
        missing, extra = set(keys) - set(types), set(types) - set(keys)
        raise SchemaDrift(f"{description}: keys without a type {sorted(missing)}, types without a key {sorted(extra)}"
                          if missing or extra else f"{description}: keys in another order than the reader's")
    out: Schema = {"type": ["object", "null"] if nullable else "object", "description": description,
                   "properties": {k: {**types[k], **_default(v)} for k, v in keys.items()},
                   "additionalProperties": False}
    required = [k for k, v in keys.items() if v is REQUIRED]
    return {**out, "required": required} if required else out


def _resources() -> Schema:
    amounts = _object(AMOUNTS, {k: _null(QUANTITY) for k in AMOUNTS}, "Resource name to quantity.")
    return _object(RESOURCES, {"requests": amounts, "limits": amounts}, "The container's requests and limits.")


def _storage() -> Schema:
    s3 = _object(storage._S3_KEYS, {
        "bucket": STRING, "region": STRING, "credentialsSecret": SUBDOMAIN, "endpoint": _null(STRING),
        "rootDirectory": _null(STRING), "redirect": BOOLEAN}, "Object storage instead of a PersistentVolumeClaim.")
    return _object(STORAGE, {"size": _null(QUANTITY), "storageClassName": _null(STRING), "s3": s3},
                   "Where the images live: a PersistentVolumeClaim (size, storageClassName) or S3.")


def _requirement(operators: tuple[str, ...]) -> Schema:
    return _object(scheduling.REQUIREMENT, {"key": STRING, "operator": {"enum": list(operators)},
                                            "values": _null(_list(STRING))}, "KEY OPERATOR VALUES.", nullable=False)


def _pod_term() -> Schema:
    selector = _object(scheduling.LABEL_SELECTOR, {
        "matchLabels": _null(_map(STRING, description="Labels.")),
        "matchExpressions": _null(_list(_requirement(scheduling.LABEL_OPERATORS), unique=False))},
        "A label selector.")
    keys = _null(_list(STRING))
    return _object(scheduling.POD_TERM, {"labelSelector": selector, "namespaceSelector": selector,
                                         "namespaces": keys, "topologyKey": STRING, "matchLabelKeys": keys,
                                         "mismatchLabelKeys": keys}, "Pods (by labels) on the same topology.",
                   nullable=False)


def _terms(required: Schema, weighted: Schema, description: str) -> Schema:
    return _object(scheduling.TERMS, {scheduling.REQUIRED_TERMS: required,
                                      scheduling.PREFERRED_TERMS: _null(_list(weighted, unique=False))}, description)


def _affinity() -> Schema:
    """As a pod spec's affinity (the reader checks the rules of each operator)."""
    match = _null(_list(_requirement(scheduling.NODE_OPERATORS), unique=False))
    term = _object(scheduling.NODE_TERM, {"matchExpressions": match, "matchFields": match}, "A node selector term.",
                   nullable=False)
    weight = {"type": "integer", "minimum": 1, "maximum": 100}
    node = _terms(_object(scheduling.NODE_SELECTOR, {"nodeSelectorTerms": _list(term, unique=False, min_items=1)},
                          "Nodes that match one of the terms."),
                  _object(scheduling.PREFERENCE, {"weight": weight, "preference": term}, "A preferred node term.",
                          nullable=False), "Node affinity, as in a pod spec.")
    pod = _terms(_null(_list(_pod_term(), unique=False)),
                 _object(scheduling.WEIGHTED_POD_TERM, {"weight": weight, "podAffinityTerm": _pod_term()},
                         "A preferred pod term.", nullable=False), "Pod (anti-)affinity, as in a pod spec.")
    return _object(scheduling.AFFINITY, {"nodeAffinity": node, "podAffinity": pod, "podAntiAffinity": pod},
                   "Affinity, as in a pod spec.")


def _scheduling() -> dict[str, Schema]:
    """nodeSelector, tolerations and affinity, as in a pod spec (docs/operations.md)."""
    toleration = _object(scheduling.TOLERATION, {
        "key": _null(STRING), "operator": _null({"enum": ["Equal", "Exists"]}), "value": _null(STRING),
        "effect": _null({"enum": list(scheduling.EFFECTS)}), "tolerationSeconds": _null({"type": "integer"})},
        "A taint the pods tolerate.", nullable=False)
    return {"nodeSelector": _null(_map(STRING, description="Node labels the pods need.")),
            "tolerations": _null(_list(toleration, unique=False)), "affinity": _affinity()}


def _gc() -> dict[str, Schema]:
    rule = _object(gc._RULE_KEYS, {
        "repositories": _list(PREFIX), "keepNewest": _null({"type": "integer", "minimum": 0, "maximum": 1_000_000}),
        "keepNewerThan": _null(DURATION)}, "Which tags of which repositories retention keeps.", nullable=False)
    return {
        "gc": _object(gc._GC_KEYS, {
            "schedule": {"type": "string", "description": "Cron schedule or macro, e.g. \"0 3 * * 0\"."},
            "timeZone": _null(STRING), "deleteUntagged": BOOLEAN, "image": STRING, "timeout": DURATION,
            **_scheduling()},
            "Run garbage collection on a schedule (a CronJob); see docs/gc.md."),
        "retention": _object(RETENTION, {"rules": _list(rule, unique=False, min_items=1),
                                         "protectedTags": _list(STRING)}, "Which tags the gc Job deletes."),
    }


def _registry_settings() -> dict[str, Schema]:
    """What every registry takes: image, storage, deleteEnabled, resources, replicas, gc, retention."""
    return {"image": STRING, "storage": _storage(), "deleteEnabled": BOOLEAN, "resources": _resources(),
            "replicas": {"type": "integer", "minimum": 1, "maximum": storage.MAX_REPLICAS}, **_gc(), **_scheduling()}


def _writers() -> Schema:
    writer = _object(WRITER, {"serviceAccount": IDENTITY, "repositories": _list(PREFIX, min_items=1),
                              "delete": BOOLEAN}, "A workload that may push.", nullable=False)
    return _null(_list(writer, unique=False))


def _push_proxy() -> Schema:
    return _object(pushproxy._KEYS, {
        "enabled": BOOLEAN, "repositories": _null(_list(PREFIX, min_items=1)), "port": _null(_port(1024)),
        "namespace": _null(LABEL), "resources": _resources(), **_scheduling()},
        "Push from laptops through `meshreg connect` (docs/pushing.md).")


def _entry() -> Schema:
    mirror = _object(MIRROR, {"upstream": _null(STRING), "credentialsSecret": _null(SUBDOMAIN),
                              "extraHosts": _list(SUBDOMAIN)}, "The upstream a mirror caches.")
    settings = _registry_settings()
    types = {"name": {**_pattern(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?"), "description": "Names its Service and more."},
             "role": {"enum": list(ROLES)}, "default": BOOLEAN, "port": _port(1024),
             **{k: settings[k] for k in registries._REGISTRY_KEYS}, "readers": _list(READER),
             "writers": _writers(), "publisher": _null(IDENTITY), "mirror": mirror, "pushProxy": _push_proxy()}
    return _object(registries._ENTRY_KEYS, types, "One registry of spec.registries.", nullable=False)


def _runtime_config() -> Schema:
    runtimes = {runtime: _object({"enabled": False, key: default}, {"enabled": BOOLEAN, key: STRING},
                                 f"Write {runtime}'s configuration on each node.")
                for runtime, (key, default) in runtimeconfig.DIRECTORY_KEYS.items()}
    return _object(runtimeconfig._KEYS, {**runtimes, "image": STRING, "resources": _resources(),
                                         "nodeSelector": _map(STRING, description="Node labels.")},
                   "A DaemonSet writing the container runtimes' config on nodes (docs/node-runtimes.md).")


def _ingress() -> Schema:
    gateway = _object(ingress._GATEWAY_KEYS, {
        "namespace": LABEL, "selector": {**_map(STRING, description="The gateway pods' labels."), "minProperties": 1},
        "serviceAccount": SUBDOMAIN, "port": _port(1), "dedicated": BOOLEAN}, "The Istio ingress gateway.")
    issuer = _object(ISSUER, {"issuer": STRING, "audiences": _list(STRING, min_items=1), "jwks": _null(STRING),
                              "jwksUri": _null(STRING)}, "An issuer of tokens (JWT).", nullable=False)
    claims = _null(_map({"anyOf": [STRING, _list(STRING, min_items=1)]}, description="Claim name to values."))
    client = _object(ingress._CLIENT_KEYS, {
        "name": LABEL, "method": {"enum": list(INGRESS_METHODS)}, "repositories": _list(PREFIX, min_items=1),
        "readRepositories": _null(_list(PREFIX, min_items=1)), "delete": BOOLEAN, "issuer": _null(STRING),
        "subject": _null(STRING), "claims": claims}, "A writer outside the cluster.", nullable=False)
    return _object(ingress._KEYS, {
        "host": SUBDOMAIN, "registry": _null(STRING), "credentialName": SUBDOMAIN, "clientCA": STRING,
        "gateway": gateway, "issuers": _list(issuer, unique=False), "clients": _list(client, unique=False)},
        "Writers outside the cluster, through an Istio ingress gateway (docs/ingress.md).")


def _audit() -> Schema:
    provider = _pattern(audit._PROVIDER.pattern)
    return _object(AUDIT, {"enabled": BOOLEAN, "provider": provider, "keepProviders": _list(provider)},
                   "Audit records of every write and refusal (docs/audit.md).")


def _spec() -> Schema:
    node_proxy = _object(NODE_PROXY, {
        "enabled": BOOLEAN, "port": _null(_port(1024)), "hostIP": STRING, "resources": _resources(),
        "runtimeConfig": _runtime_config()}, "The read-only proxy on every node (pulls from localhost:PORT).")
    settings = _registry_settings()
    return _object(spec._SPEC_KEYS, {
        "namespace": LABEL, "trustDomain": SUBDOMAIN, "istioRevision": _null(LABEL),
        "registry": _object(registries._REGISTRY_KEYS, {k: settings[k] for k in registries._REGISTRY_KEYS},
                            "The one registry (or use spec.registries)."),
        "nodeProxy": node_proxy, "readers": _null(_list(READER)), "writers": _writers(),
        "registries": _null(_list(_entry(), unique=False, min_items=1)),
        "localRegistryHosting": _object(HOSTING, {"host": _null(STRING), "help": STRING, "publish": BOOLEAN},
                                        "The KEP-1755 ConfigMap kube-public/local-registry-hosting."),
        "mesh": {"enum": list(mesh.MESHES)}, "pushProxy": _push_proxy(), "ingress": _ingress(), "audit": _audit(),
        "imagePullSecrets": _list(_object(scheduling.PULL_SECRET, {"name": SUBDOMAIN}, "A Secret in each namespace "
                                          "meshreg runs pods in.", nullable=False))},
        "What meshreg deploys; every key is optional.")


def schema() -> Schema:
    """The JSON Schema of a `meshreg.yaml` document."""
    top = _object(TOP, {"apiVersion": {"const": API_VERSION}, "kind": {"const": KIND},
                        "metadata": _object(METADATA, {"name": {**LABEL, "description": "The instance name."}},
                                            "The instance.", nullable=False),
                        "spec": _spec()}, "A meshreg config.", nullable=False)
    return {"$schema": DIALECT, "$comment": f"Generated by `meshreg schema` (meshreg {__version__}) from the config "
            "reader's key tables. Do not edit: run it again.", "title": "meshreg.yaml", **top}
