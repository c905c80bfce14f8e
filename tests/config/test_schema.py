"""The JSON Schema of meshreg.yaml (`meshreg schema`): valid draft 2020-12; every example, the starter and the test
configs validate; the reader and the schema know the same keys at every level (the reader run on documents that use
every key); and a config the reader accepts is never one the schema rejects (every key removed, set to null or given
another type, in turn)."""

from __future__ import annotations

import copy
import json
from typing import Any, ClassVar

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from meshreg.config import starter
from meshreg.config.reader import Reader
from meshreg.config.schema import SCHEMA_FILE, schema
from meshreg.config.source import parse
from meshreg.config.spec import read_config
from meshreg.errors import ConfigError
from support.configs import AMBIENT, GC_CONFIG, RUNTIME_CONFIG, SEVERAL_WRITERS
from support.ingress_configs import CLIENTS, ingress_text, jwks
from support.paths import ROOT

VALIDATOR = jsonschema.Draft202012Validator(schema())
EXAMPLES = sorted(ROOT.glob("examples/*/meshreg.yaml"))
RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi", "ephemeral-storage": "1Gi"}, "limits": {"memory": "1Gi"}}
TOP = {"apiVersion": "meshreg.dev/v1alpha1", "kind": "MeshRegistry", "metadata": {"name": "dev"}}
# Where pods run, with every key of a pod spec's tolerations and affinity that the reader reads.
POD_TERM = {"labelSelector": {"matchLabels": {"app": "noisy"},
                              "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
            "namespaceSelector": {"matchLabels": {"team": "a"},
                                  "matchExpressions": [{"key": "env", "operator": "Exists"}]}, "namespaces": ["apps"],
            "topologyKey": "kubernetes.io/hostname", "matchLabelKeys": ["pod-template-hash"],
            "mismatchLabelKeys": ["tenant"]}
POD_TERMS = {"requiredDuringSchedulingIgnoredDuringExecution": [POD_TERM],
             "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm": POD_TERM}]}
PLACED = {"nodeSelector": {"pool": "registry"},
          "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "registry", "effect": "NoExecute",
                           "tolerationSeconds": 30}],
          "affinity": {"nodeAffinity": {
              "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
                  "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}],
                  "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-1"]}]}]},
              "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "preference": {
                  "matchExpressions": [{"key": "disk", "operator": "Exists"}],
                  "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-2"]}]}}]},
              "podAffinity": POD_TERMS, "podAntiAffinity": POD_TERMS}}

# Every key the reader reads, in the single-registry shape (with the ingress and the runtime config) ...
SINGLE = {**TOP, "spec": {
    "namespace": "registry", "trustDomain": "example.org", "istioRevision": "stable", "mesh": "sidecar",
    "registry": {"image": "docker.io/library/registry:2.8.3", "storage": {"s3": {
                     "bucket": "images", "region": "eu-west-1", "credentialsSecret": "s3", "endpoint": None,
                     "rootDirectory": None, "redirect": True}},
                 "deleteEnabled": True, "resources": RESOURCES, "replicas": 2,
                 "gc": {"schedule": "0 3 * * 0", "timeZone": "Etc/UTC", "deleteUntagged": False,
                        "image": "docker.io/library/python:3.13-alpine", "timeout": "2h", **PLACED},
                 "retention": {"rules": [{"repositories": ["team-a/"], "keepNewest": 3, "keepNewerThan": "14d"}],
                               "protectedTags": ["release-*"]}, **PLACED},
    "nodeProxy": {"enabled": True, "port": 5000, "hostIP": "127.0.0.1", "resources": RESOURCES, "runtimeConfig": {
        "containerd": {"enabled": True, "configPath": "/etc/containerd/certs.d"},
        "crio": {"enabled": True, "registriesDir": "/etc/containers/registries.conf.d"},
        "image": "docker.io/library/busybox:1.36.1", "resources": RESOURCES,
        "nodeSelector": {"kubernetes.io/os": "linux"}}},
    "readers": ["apps/*", "ci/runner"],
    "writers": [{"serviceAccount": "builds/kaniko", "repositories": ["team-a/"], "delete": True}],
    "localRegistryHosting": {"host": "localhost:5000", "help": "https://example.org/help", "publish": False},
    "pushProxy": {"enabled": True, "repositories": ["dev/"], "port": 5010, "namespace": "registry-push",
                  "resources": RESOURCES, **PLACED},
    "imagePullSecrets": [{"name": "mirror-pull"}],
    "audit": {"enabled": True, "provider": "meshreg-audit", "keepProviders": ["envoy"]},
    "ingress": {"host": "registry.example.com", "registry": "registry", "credentialName": "registry-tls",
                "clientCA": "ingress-ca",
                "gateway": {"namespace": "istio-system", "selector": {"istio": "ingressgateway"},
                            "serviceAccount": "istio-ingressgateway-service-account", "port": 443, "dedicated": False},
                "issuers": [{"issuer": "https://issuer.example.com", "audiences": ["registry.example.com"],
                             "jwks": jwks(), "jwksUri": None}],
                "clients": [{"name": "loader", "method": "mtls", "repositories": ["images/"],
                             "readRepositories": ["*"], "delete": True, "issuer": None, "subject": None,
                             "claims": None},
                            {"name": "ci", "method": "jwt", "repositories": ["ci/"], "issuer":
                             "https://issuer.example.com", "subject": "ci-bot", "claims": {"owner": ["acme"]}}]}}}
# ... and in the shape of spec.registries (S3, a readonly registry with gc and a push proxy as publisher, a mirror).
SEVERAL = {**TOP, "spec": {"namespace": "registry", "nodeProxy": {"enabled": True}, "registries": [
    {"name": "images", "role": "images", "default": True, "port": 5000, "image": "docker.io/library/registry:2.8.3",
     "storage": {"s3": {"bucket": "images", "region": "eu-west-1", "credentialsSecret": "s3", "endpoint":
                        "https://minio.storage.svc:9000", "rootDirectory": "/registry", "redirect": False}},
     "deleteEnabled": False, "resources": RESOURCES, "replicas": 2, "gc": None, "retention": None,
     "readers": ["*"], "writers": [{"serviceAccount": "builds/kaniko"}], "publisher": None, "mirror": None,
     "pushProxy": None, **PLACED},
    {"name": "loaded", "role": "readonly", "port": 5001, "publisher": "registry-push-loaded/push-proxy",
     "storage": {"size": "5Gi", "storageClassName": ""}, "deleteEnabled": True,
     "gc": {"schedule": "@weekly", **PLACED}, "retention": {"rules": [{"keepNewest": 1}]},
     "pushProxy": {"repositories": ["*"], "resources": RESOURCES, **PLACED}},
    {"name": "cache", "role": "mirror", "port": 5002, "mirror": {
        "upstream": "https://ghcr.io", "credentialsSecret": "ghcr",
        "extraHosts": ["pkg-containers.githubusercontent.com"]}},
]}}
MAXIMAL = {"single": SINGLE, "several": SEVERAL}


def accepts(doc: dict, tmp_path) -> bool:
    """Whether meshreg accepts `doc` (relative paths resolve under tmp_path)."""
    try:
        config.from_text(json.dumps(doc), name=str(tmp_path / "meshreg.yaml"))
    except ConfigError:
        return False
    return True


def read(doc: dict, tmp_path, reader: type[Reader]) -> None:
    """Run `reader` over a valid `doc` as config.from_text does."""
    source = parse(json.dumps(doc), str(tmp_path / "meshreg.yaml"))
    checking = reader(source)
    read_config(checking, source.data, source.name)
    assert not getattr(checking, "problems", [])  # a reader that collects problems found none


def errors(doc: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)]


def test_the_schema_is_a_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_validates(path):
    assert errors(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("text", [starter.TEXT, SEVERAL_WRITERS, AMBIENT, RUNTIME_CONFIG, GC_CONFIG,
                                  ingress_text(clients=CLIENTS)],
                         ids=["starter", "several-writers", "ambient", "runtime-config", "gc", "ingress"])
def test_the_starter_and_the_test_configs_validate(text, tmp_path):
    doc = yaml.safe_load(text)
    assert accepts(doc, tmp_path)  # a valid config to begin with
    assert errors(doc) == []


def test_the_starter_names_the_schema_on_its_first_line():
    assert starter.TEXT.splitlines()[0] == f"# yaml-language-server: $schema={SCHEMA_FILE}"


@pytest.mark.parametrize("name", sorted(MAXIMAL))
def test_the_documents_that_use_every_key_are_valid(name, tmp_path):
    assert accepts(MAXIMAL[name], tmp_path) and errors(MAXIMAL[name]) == []


class Recording(Reader):
    """The reader, noting every mapping it reads: its path (list indexes as *) and the keys it accepts there."""

    seen: ClassVar[dict[tuple[str, ...], set[str]]] = {}

    def mapping(self, value: object, path: Any, keys: Any, *args: Any, **kwargs: Any) -> Any:
        Recording.seen.setdefault(tuple("*" if isinstance(p, int) else str(p) for p in path), set()).update(keys)
        return super().mapping(value, path, keys, *args, **kwargs)


def schema_mappings(node: dict, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], set[str]]:
    """Every mapping the schema declares with fixed keys: path (items and map values as *) -> its keys."""
    out: dict[tuple[str, ...], set[str]] = {}
    for branch in node.get("anyOf", []):
        out.update(schema_mappings(branch, path))
    if "properties" in node:
        out[path] = set(node["properties"])
        for key, sub in node["properties"].items():
            out.update(schema_mappings(sub, (*path, key)))
    for nested in ("items", "additionalProperties"):
        if isinstance(node.get(nested), dict):
            out.update(schema_mappings(node[nested], (*path, "*")))
    return out


def test_the_reader_and_the_schema_know_the_same_keys_everywhere(tmp_path):
    Recording.seen = {}
    for doc in MAXIMAL.values():
        read(doc, tmp_path, Recording)
    declared = schema_mappings(schema())
    # a mapping of names the user chooses (gateway selector, claims) is read with its own keys: not a key table
    read_tables = {p: keys for p, keys in Recording.seen.items() if p[-1:] not in (("selector",), ("claims",))}
    assert {p: keys for p, keys in declared.items() if p in read_tables} == read_tables
    unread = sorted(set(declared) - set(read_tables))
    assert unread == []  # and no table of the schema that the reader never reads


def mutations(doc: Any, path: tuple = (), seen: set[int] | None = None):
    """Each (path, mutated document): every key removed, set to null, or given a value of another type. A subtree
    that appears in several places (PLACED: the same schema at each) is mutated inside only where it appears first."""
    seen = set() if seen is None else seen
    if id(doc) in seen:
        return
    seen.add(id(doc))
    if isinstance(doc, dict):
        items = list(doc.items())
    elif isinstance(doc, list):
        items = list(enumerate(doc))
    else:
        return
    for key, value in items:
        for replacement in ("<removed>", None, "text", 7, True, [], {}):
            if replacement == value and type(replacement) is type(value):
                continue
            if replacement == "<removed>" and isinstance(doc, list):
                continue
            yield (*path, key), replacement, value
        yield from mutations(value, (*path, key), seen)


def mutated(doc: dict, path: tuple, replacement: Any) -> dict:
    out = copy.deepcopy(doc)
    parent = out
    for part in path[:-1]:
        parent = parent[part]
    if replacement == "<removed>":
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return out


@pytest.mark.parametrize("name", sorted(MAXIMAL))
def test_the_schema_never_rejects_a_config_the_reader_accepts(name, tmp_path):
    wrongly_rejected = []
    for path, replacement, _ in mutations(MAXIMAL[name]):
        doc = mutated(MAXIMAL[name], path, replacement)
        if accepts(doc, tmp_path) and errors(doc):
            wrongly_rejected.append((path, replacement, errors(doc)))
    assert wrongly_rejected == []


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["spec"].update(wrters=[]), "'wrters' was unexpected"),
    (lambda d: d["spec"]["nodeProxy"].update(port="5000"), "5000"),
    (lambda d: d["spec"]["nodeProxy"].update(port=15001), "15001"),
    (lambda d: d["spec"]["writers"].append({"serviceAccount": "Team-A/builder"}), "Team-A/builder"),
    (lambda d: d["spec"].update(mesh="istio"), "'istio' is not one of"),
    (lambda d: d.update(apiVersion="meshreg.dev/v1"), "meshreg.dev/v1alpha1"),
    (lambda d: d["spec"]["registry"]["storage"].update(size="10GB"), "10GB"),
])
def test_the_schema_flags_what_an_editor_should(change, message):
    doc = copy.deepcopy(SINGLE)
    change(doc)
    assert any(message in e for e in errors(doc)), errors(doc)


def test_meshreg_schema_prints_it_as_json_or_yaml():
    runner = CliRunner()
    as_json, as_yaml = runner.invoke(main, ["schema"]), runner.invoke(main, ["schema", "-o", "yaml"])
    assert as_json.exit_code == as_yaml.exit_code == 0
    assert json.loads(as_json.stdout) == yaml.safe_load(as_yaml.stdout) == schema()


def test_init_writes_the_schema_its_first_line_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / SCHEMA_FILE).read_text()) == schema()
    assert "wrote meshreg.yaml and meshreg.schema.json" in result.stderr
    first = (tmp_path / "meshreg.yaml").read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=meshreg.schema.json"


def test_init_leaves_a_schema_file_of_its_own_alone_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / SCHEMA_FILE).write_text("{}\n")
    result = CliRunner().invoke(main, ["init", "-c", "dev.yaml"])
    assert result.exit_code == 0 and (tmp_path / SCHEMA_FILE).read_text() == "{}\n"
    assert "meshreg.schema.json exists and is not this meshreg's schema; left as it is" in result.stderr


def test_init_to_stdout_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init", "-c", "-"])
    assert result.stdout == starter.TEXT and list(tmp_path.iterdir()) == []
