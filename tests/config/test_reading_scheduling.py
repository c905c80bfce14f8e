"""nodeSelector, tolerations and affinity (registry, push proxy, gc) and imagePullSecrets: named like the pod spec's
fields, read as written, and every mistake one line naming file, line and field, exit 2, nothing rendered."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from support.configs import minimal

PLACED = """\
  registry:
    nodeSelector: {node-role.example.com/registry: "true"}
    tolerations:
      - {key: dedicated, operator: Equal, value: registry, effect: NoSchedule}
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 30}
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms:
            - matchExpressions: [{key: topology.kubernetes.io/zone, operator: In, values: [a, b]}]
        preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 10
            preference: {matchExpressions: [{key: example.com/disk, operator: Gt, values: ["100"]}]}
    gc: {schedule: "0 3 * * 0"}
"""


def test_nothing_is_placed_unless_asked_for():
    reg = config.from_text(minimal(), name="m.yaml").registry
    assert reg.scheduling.pod_spec() == {}


def test_a_registry_is_placed_as_written():
    reg = config.from_text(minimal(PLACED), name="m.yaml").registry
    assert reg.scheduling.node_selector == (("node-role.example.com/registry", "true"),)
    assert reg.scheduling.tolerations == (
        {"key": "dedicated", "operator": "Equal", "value": "registry", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 30})
    assert reg.scheduling.affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "example.com/disk", "operator": "Gt",
                                                             "values": ["100"]}]}}]


def test_gc_runs_where_its_registry_may_unless_told_otherwise():
    reg = config.from_text(minimal(PLACED), name="m.yaml").registry
    assert reg.gc.scheduling.node_selector == reg.scheduling.node_selector
    assert reg.gc.scheduling.tolerations == reg.scheduling.tolerations
    assert reg.gc.scheduling.affinity is None  # it follows the registry's pod (render/gc.py)
    own = PLACED.replace('gc: {schedule: "0 3 * * 0"}', 'gc: {schedule: "0 3 * * 0", tolerations: [], '
                                                          'nodeSelector: {pool: gc}}')
    gc = config.from_text(minimal(own), name="m.yaml").registry.gc
    assert (gc.scheduling.node_selector, gc.scheduling.tolerations) == ((("pool", "gc"),), ())


def test_a_push_proxy_and_each_of_several_registries_are_placed_on_their_own():
    text = minimal("""\
  registries:
    - name: images
      port: 5000
      default: true
      tolerations: [{operator: Exists}]
      pushProxy: {repositories: [dev/], nodeSelector: {pool: edge}}
    - name: cache
      port: 5001
      nodeSelector: {pool: storage}
""")
    images, cache = config.from_text(text, name="m.yaml").registries
    assert images.scheduling.tolerations == ({"operator": "Exists"},)
    assert images.push_proxy.scheduling.node_selector == (("pool", "edge"),)
    assert images.push_proxy.scheduling.tolerations == ()
    assert cache.scheduling.node_selector == (("pool", "storage"),) and cache.scheduling.tolerations == ()


def test_image_pull_secrets_are_read_in_the_pod_specs_shape():
    cfg = config.from_text(minimal("  imagePullSecrets: [{name: mirror-pull}, {name: other.pull}]\n"), name="m.yaml")
    assert cfg.image_pull_secrets == ("mirror-pull", "other.pull")
    assert config.from_text(minimal(), name="m.yaml").image_pull_secrets == ()


def registry(body: str) -> str:
    """A config whose registry has `body` (YAML keys, indented 4 spaces)."""
    return minimal("  registry:\n" + body)


BAD = [
    (registry("    nodeSelector: [a]\n"), "m.yaml:6: spec.registry.nodeSelector: expected a mapping of node labels"),
    (registry("    nodeSelector: {'a b': x}\n"), "spec.registry.nodeSelector.a b: 'a b' is not a label key"),
    (registry("    nodeSelector: {pool: 'a b'}\n"), "spec.registry.nodeSelector.pool: 'a b' is not a label value"),
    (registry("    tolerations: {key: a}\n"), "m.yaml:6: spec.registry.tolerations: expected a list"),
    (registry("    tolerations:\n      - {key: a, operator: Matches}\n"),
     "m.yaml:7: spec.registry.tolerations[0].operator: 'Matches' is not a toleration operator (Equal or Exists)"),
    (registry("    tolerations:\n      - {key: a, operator: Exists, value: b}\n"),
     "spec.registry.tolerations[0].value: a toleration with operator Exists matches any value: leave value out"),
    (registry("    tolerations:\n      - {value: b}\n"),
     "m.yaml:7: spec.registry.tolerations[0]: a toleration without a key must have operator: Exists"),
    (registry("    tolerations:\n      - {key: a, effect: NoRun}\n"),
     "spec.registry.tolerations[0].effect: 'NoRun' is not a taint effect (NoSchedule, PreferNoSchedule, NoExecute"),
    (registry("    tolerations:\n      - {key: a, effect: NoSchedule, tolerationSeconds: 5}\n"),
     "spec.registry.tolerations[0].tolerationSeconds: only a NoExecute toleration has tolerationSeconds"),
    (registry("    tolerations:\n      - {key: a, effect: NoExecute, tolerationSeconds: soon}\n"),
     "spec.registry.tolerations[0].tolerationSeconds: expected an integer, got the string 'soon'"),
    (registry("    tolerations:\n      - {key: a, tolerationsSeconds: 5}\n"),
     "spec.registry.tolerations[0].tolerationsSeconds: unknown key (did you mean 'tolerationSeconds'?)"),
    (registry("    affinity: {nodeAffinity: {}, podAfinity: {}}\n"),
     "m.yaml:6: spec.registry.affinity.podAfinity: unknown key (did you mean 'podAffinity'?)"),
    (registry("    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n"
              "          nodeSelectorTerms: []\n"),
     "m.yaml:9: spec.registry.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
     "nodeSelectorTerms: expected at least one term"),
    (registry("    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n"
              "          nodeSelectorTerms: [{}]\n"),
     "nodeSelectorTerms[0]: an empty term matches no node: give matchExpressions or matchFields"),
    (registry("    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n"
              "          nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In}]}]\n"),
     "nodeSelectorTerms[0].matchExpressions[0].values: operator In needs at least one value"),
    (registry("    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n"
              "          nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: Exists, values: [a]}]}]\n"),
     "matchExpressions[0].values: operator Exists takes no values"),
    (registry("    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n"
              "          nodeSelectorTerms: [{matchExpressions: [{key: cpus, operator: Gt, values: [many]}]}]\n"),
     "matchExpressions[0].values: operator Gt needs exactly one integer value"),
    (registry("    affinity:\n      nodeAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n"
              "          nodeSelectorTerms: [{matchFields: [{key: metadata.labels, operator: In, values: [a]}]}]\n"),
     "matchFields[0].key: 'metadata.labels': matchFields supports only metadata.name"),
    (registry("    affinity:\n      nodeAffinity:\n        preferredDuringSchedulingIgnoredDuringExecution:\n"
              "          - {weight: 0, preference: {matchExpressions: [{key: a, operator: Exists}]}}\n"),
     "m.yaml:9: spec.registry.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: "
     "0 is out of range (1-100)"),
    (registry("    affinity:\n      podAntiAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n"
              "          - labelSelector: {matchLabels: {app: x}}\n"),
     "m.yaml:9: spec.registry.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]: "
     "missing required key 'topologyKey'"),
    (registry("    affinity:\n      podAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution:\n"
              "          - {topologyKey: zone, labelSelector: {matchExpressions: [{key: a, operator: Gt, "
              "values: ['1']}]}}\n"),
     "labelSelector.matchExpressions[0].operator: 'Gt' is not an operator here (In, NotIn, Exists, DoesNotExist)"),
    (registry("    gc: {schedule: '@daily', tolerations: [{key: a, operator: Bad}]}\n"),
     "m.yaml:6: spec.registry.gc.tolerations[0].operator: 'Bad' is not a toleration operator"),
    (minimal("  pushProxy: {repositories: [dev/], affinity: {nodeAffinity: {required: {}}}}\n"),
     "m.yaml:5: spec.pushProxy.affinity.nodeAffinity.required: unknown key"),
    (minimal("  imagePullSecrets: [mirror-pull]\n"),
     "m.yaml:5: spec.imagePullSecrets[0]: expected a mapping, got the string 'mirror-pull'"),
    (minimal("  imagePullSecrets: [{name: Mirror}]\n"),
     "m.yaml:5: spec.imagePullSecrets[0].name: 'Mirror' is not a valid name"),
    (minimal("  imagePullSecrets: [{name: a}, {name: a}]\n"),
     "m.yaml:5: spec.imagePullSecrets[1].name: 'a' is listed twice (imagePullSecrets[0])"),
    (minimal("  registries:\n    - {name: a, port: 5000, tolerations: [{operator: Exists, key: ''}],"
             " nodeSelector: x}\n"),
     "m.yaml:6: spec.registries[0].nodeSelector: expected a mapping of node labels"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[e.split(": ", 2)[-1][:60] for _, e in BAD])
def test_a_mistake_is_one_line_exit_2_and_nothing_rendered(tmp_path, monkeypatch, text, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(text)
    result = CliRunner().invoke(main, ["render", "-c", "m.yaml"])
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("meshreg: error: ") and expected in line, line


def test_every_placement_mistake_is_reported_in_one_run_without_cascades(tmp_path, monkeypatch):
    """Each field is read on its own (as the rest of the config is): independent mistakes in tolerations, affinity,
    gc's placement and imagePullSecrets all come out of one run, in file order; a misspelled key reports only
    itself."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(minimal("""\
  registry:
    nodeSelecter: {pool: a}
    tolerations:
      - {key: a, operator: Matches, effect: NoRun}
      - {key: b, operator: Exists, value: c}
    affinity:
      nodeAffinity:
        requiredDuringSchedulingIgnoredDuringExecution:
          nodeSelectorTerms: [{matchExpressions: [{key: 'a b', operator: Gt, values: [many]}]}]
    gc: {schedule: '@daily', nodeSelector: {pool: 'a b'}}
  imagePullSecrets: [{name: Mirror}, {name: ok}, {name: ok}]
"""))
    result = CliRunner().invoke(main, ["render", "-c", "m.yaml"])
    assert result.exit_code == 2 and result.stdout == ""
    assert [line.removeprefix("meshreg: error: ") for line in result.stderr.splitlines()] == [
        "m.yaml:6: spec.registry.nodeSelecter: unknown key (did you mean 'nodeSelector'?)",
        "m.yaml:8: spec.registry.tolerations[0].operator: 'Matches' is not a toleration operator (Equal or Exists)",
        "m.yaml:8: spec.registry.tolerations[0].effect: 'NoRun' is not a taint effect (NoSchedule, "
        "PreferNoSchedule, NoExecute; leave it out for all of them)",
        "m.yaml:9: spec.registry.tolerations[1].value: a toleration with operator Exists matches any value: leave "
        "value out",
        "m.yaml:13: spec.registry.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
        "nodeSelectorTerms[0].matchExpressions[0].key: 'a b' is not a label key (an optional DNS prefix and '/', "
        "then a name of at most 63 characters)",
        "m.yaml:13: spec.registry.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
        "nodeSelectorTerms[0].matchExpressions[0].values: operator Gt needs exactly one integer value",
        "m.yaml:14: spec.registry.gc.nodeSelector.pool: 'a b' is not a label value (at most 63 letters, digits, "
        "'-', '_' or '.')",
        "m.yaml:15: spec.imagePullSecrets[0].name: 'Mirror' is not a valid name (lowercase RFC 1123 subdomain: a-z, "
        "0-9, '-' and '.')",
        "m.yaml:15: spec.imagePullSecrets[2].name: 'ok' is listed twice (imagePullSecrets[1])",
    ]


def test_a_push_proxys_placement_is_reported_beside_the_registrys_other_mistakes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(minimal("""\
  registry: {tolerations: [{key: a, operator: Exists, effect: NoExecute, tolerationSeconds: 30}]}
  pushProxy: {repositories: [dev/], tolerations: {key: a}, nodeSelector: {pool: 'a b'}}
  imagePullSecrets: {name: x}
"""))
    result = CliRunner().invoke(main, ["render", "-c", "m.yaml"])
    assert result.exit_code == 2 and result.stdout == ""
    assert [line.removeprefix("meshreg: error: ") for line in result.stderr.splitlines()] == [
        "m.yaml:6: spec.pushProxy.nodeSelector.pool: 'a b' is not a label value (at most 63 letters, digits, '-', "
        "'_' or '.')",
        "m.yaml:6: spec.pushProxy.tolerations: expected a list",
        "m.yaml:7: spec.imagePullSecrets: expected a list",
    ]
