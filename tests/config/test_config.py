"""Config validation: every mistake is one line naming the file, line, field path and what was expected."""

from __future__ import annotations

import pytest

from meshreg import config
from meshreg.errors import ConfigError
from support.configs import SEVERAL_WRITERS, minimal


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        config.from_text(text, name="meshreg.yaml")
    message = str(e.value)
    assert "\n" not in message
    return message


def test_a_minimal_config_takes_every_default():
    cfg = config.from_text(minimal(), name="m.yaml")
    assert (cfg.namespace, cfg.trust_domain, cfg.node_proxy.port, cfg.readers, cfg.writers) == (
        "meshreg", "cluster.local", 5000, ("*",), ())
    assert cfg.registry.image == "docker.io/library/registry:2.8.3"
    assert cfg.name == "dev" and cfg.source == "m.yaml"


def test_the_starter_config_is_valid_and_has_no_writers():
    from meshreg.config import starter

    cfg = config.from_text(starter.TEXT, name="meshreg.yaml")
    assert cfg.writers == () and cfg.name == "dev"


def test_writers_are_read_with_normalized_prefixes():
    cfg = config.from_text(SEVERAL_WRITERS, name="m.yaml")
    by_sa = {w.service_account: w for w in cfg.writers}
    assert by_sa["builds/kaniko"].repositories == ("*",) and by_sa["builds/kaniko"].delete
    assert by_sa["ci/buildkit"].repositories == ("shared/base/", "team-b/")
    assert cfg.principal("team-a/builder") == "example.org/ns/team-a/sa/builder"


def test_load_without_a_file_uses_the_built_in_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.load(None) is config.DEFAULT


def test_load_of_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: no such file \(run `meshreg init`"):
        config.load(str(tmp_path / "nope.yaml"))


@pytest.mark.parametrize(("spec", "expected"), [
    ("  registy: {}\n", "meshreg.yaml:5: spec.registy: unknown key (did you mean 'registry'?)"),
    ("  nodeProxy: {port: '5000'}\n",
     "meshreg.yaml:5: spec.nodeProxy.port: expected an integer, got the string '5000'"),
    ("  nodeProxy: {port: 80}\n", "spec.nodeProxy.port: 80 is out of range (1024-65535)"),
    ("  nodeProxy: {port: 70000}\n", "spec.nodeProxy.port: 70000 is out of range"),
    ("  nodeProxy: {port: 15021}\n", "spec.nodeProxy.port: 15021 collides with a port the Istio proxy keeps"),
    ("  nodeProxy: {hostIP: 0.0.0.0}\n", "spec.nodeProxy.hostIP: '0.0.0.0' is not a loopback address"),
    ("  nodeProxy: {enabled: yes}\n", None),  # YAML 1.1 yes is a real boolean: accepted
    ("  namespace: no\n", "spec.namespace: expected a string, got the boolean false (quote it"),
    ("  namespace: My_NS\n", "spec.namespace: 'My_NS' is not a valid name (lowercase RFC 1123 label"),
    ("  namespace: kube-system\n", "spec.namespace: 'kube-system' is reserved"),
    ("  trustDomain: td/evil\n", "spec.trustDomain: 'td/evil' is not a trust domain: it must not contain '/'"),
    ("  registry: {storage: {size: ten}}\n", "spec.registry.storage.size: 'ten' is not a Kubernetes quantity"),
    ("  registry: {storage: {size: 0Gi}}\n", "spec.registry.storage.size: '0Gi' must be larger than zero"),
    ("  registry: {storage: {storageClassName: Fast_SSD}}\n", "spec.registry.storage.storageClassName: 'Fast_SSD'"),
    ("  registry: {deleteEnabled: 'true'}\n", "spec.registry.deleteEnabled: expected true or false"),
    ("  registry: {image: 'registry 2'}\n", "spec.registry.image: 'registry 2' is not an image reference"),
    ("  registry: {resources: {requests: {cpu: lots}}}\n", "spec.registry.resources.requests.cpu: 'lots'"),
    ("  registry: {resources: {requests: {gpu: 1}}}\n", "spec.registry.resources.requests.gpu: unknown key"),
    ("  readers: ['*', 'a/b']\n", "spec.readers: '*' already admits every mesh identity"),
    ("  readers: ['a/b', 'a/b']\n", "spec.readers[1]: 'a/b' is listed twice"),
    ("  readers: ['just-a-name']\n", "spec.readers[0]: 'just-a-name' is not a workload identity"),
    ("  writers: {serviceAccount: a/b}\n", "spec.writers: expected a list of writers"),
    ("  writers:\n    - serviceAccount: Kaniko/x\n",
     "meshreg.yaml:6: spec.writers[0].serviceAccount: 'Kaniko/x': namespace 'Kaniko' is not a valid name"),
    ("  writers:\n    - serviceAccount: builds\n",
     "spec.writers[0].serviceAccount: 'builds' is not a workload identity (expected NS/SA"),
    ("  writers:\n    - serviceAccount: builds/*\n", "spec.writers[0].serviceAccount: 'builds/*'"),
    ("  writers:\n    - {serviceAccount: a/b}\n    - {serviceAccount: a/b}\n",
     "meshreg.yaml:7: spec.writers[1].serviceAccount: 'a/b' is already a writer (writers[0])"),
    ("  writers:\n    - {repositories: ['*']}\n", "spec.writers[0]: missing required key 'serviceAccount'"),
    ("  writers:\n    - {serviceAccount: a/b, repositories: []}\n", "spec.writers[0].repositories: empty"),
    ("  writers:\n    - {serviceAccount: a/b, repositories: ['*', x/]}\n", "'*' already covers every repository"),
    ("  writers:\n    - {serviceAccount: a/b, repositories: [x, x/]}\n", "lists the same prefix twice"),
    ("  writers:\n    - {serviceAccount: a/b, repositories: [Team/]}\n", "'Team/' is not a repository prefix"),
    ("  writers:\n    - {serviceAccount: a/b, repositories: ['team-*']}\n", "'team-*' is not a repository prefix"),
    ("  writers:\n    - {serviceAccount: meshreg/node-proxy}\n",
     "meshreg.yaml:6: spec.writers[0].serviceAccount: 'meshreg/node-proxy' is the node proxy"),
    ("  writers:\n    - {serviceAccount: a/b, delete: true}\n",
     "spec.writers[0].delete: grants DELETE but spec.registry.deleteEnabled is false"),
])
def test_each_mistake_is_one_line_naming_the_field(spec, expected):
    text = minimal(spec)
    if expected is None:
        config.from_text(text, name="meshreg.yaml")
        return
    assert expected in error_of(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("apiVersion: meshreg.dev/v1\nkind: MeshRegistry\nmetadata: {name: a}\n",
     "meshreg.yaml:1: apiVersion: expected 'meshreg.dev/v1alpha1', got 'meshreg.dev/v1'"),
    ("apiVersion: meshreg.dev/v1alpha1\nkind: Registry\nmetadata: {name: a}\n", "kind: expected 'MeshRegistry'"),
    ("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\n", "missing required key 'metadata'"),
    ("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: Dev}\n", "metadata.name: 'Dev'"),
    ("- a\n- b\n", "meshreg.yaml:1: expected a mapping, got a list"),
    ("", "meshreg.yaml: the file is empty"),
    ("spec:\n  writers: [\n", "meshreg.yaml:3: invalid YAML"),
    ("a: 1\nb: [1, 2\nc: 3\n", "invalid YAML"),
    ("apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nkind: MeshRegistry\nmetadata: {name: a}\n",
     "meshreg.yaml:3: kind: duplicate key"),
])
def test_document_level_mistakes_are_one_line(text, expected):
    assert expected in error_of(text)
