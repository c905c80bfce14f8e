"""Every problem of a config in one run: one line each (as each reads alone), in the file's order, and nothing that
only follows from a value already reported as wrong."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from meshreg import config
from meshreg.cli import main
from meshreg.errors import ConfigError
from support.configs import minimal


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        config.from_text(text, name="meshreg.yaml")
    assert str(e.value) == "\n".join(e.value.problems)
    return e.value.problems


def alone(spec: str) -> str:
    """The one line a config with only this mistake gets."""
    [line] = problems(minimal(spec))
    return line


SEVERAL = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: Dev}
spec:
  namespace: My_NS
  nodeProxy: {port: 80, hostIP: 0.0.0.0}
  registry: {storage: {size: ten}, image: 'registry 2'}
  readers: ['just-a-name', 'a/b', 'a/b']
  writers:
    - serviceAccount: Kaniko/x
    - {serviceAccount: c/d, delete: true}
  bogus: 1
"""


def test_independent_mistakes_are_all_reported_in_file_order():
    assert [line.split(": ", 2)[:2] for line in problems(SEVERAL)] == [
        ["meshreg.yaml:3", "metadata.name"],
        ["meshreg.yaml:5", "spec.namespace"],
        ["meshreg.yaml:6", "spec.nodeProxy.port"],
        ["meshreg.yaml:6", "spec.nodeProxy.hostIP"],
        ["meshreg.yaml:7", "spec.registry.storage.size"],
        ["meshreg.yaml:7", "spec.registry.image"],
        ["meshreg.yaml:8", "spec.readers[0]"],
        ["meshreg.yaml:8", "spec.readers[2]"],
        ["meshreg.yaml:10", "spec.writers[0].serviceAccount"],
        ["meshreg.yaml:11", "spec.writers[1].delete"],
        ["meshreg.yaml:12", "spec.bogus"],
    ]


@pytest.mark.parametrize("spec", [
    "  namespace: My_NS\n",
    "  nodeProxy: {port: 80}\n",
    "  registry: {image: 'registry 2'}\n",
    "  writers:\n    - serviceAccount: Kaniko/x\n",
    "  bogus: 1\n",
])
def test_each_line_reads_as_it_does_when_that_mistake_is_alone(spec):
    def text(line: str) -> str:  # the field and what is wrong, without the line number
        return line.split(": ", 1)[1]

    assert text(alone(spec)) in [text(line) for line in problems(SEVERAL)]


def test_a_line_per_problem_on_stderr_with_exit_2(tmp_path):
    (tmp_path / "meshreg.yaml").write_text(SEVERAL)
    result = CliRunner().invoke(main, ["render", "-c", str(tmp_path / "meshreg.yaml")])
    lines = result.output.splitlines()
    assert result.exit_code == 2 and len(lines) == 11
    assert all(line.startswith(f"meshreg: error: {tmp_path / 'meshreg.yaml'}:") for line in lines)


def test_a_misspelled_key_hides_what_would_only_follow_from_its_default():
    # `registy` meant `registry: {deleteEnabled: true}`: the DELETE grant is not reported against the default
    text = minimal("  namespace: Bad\n  registy: {deleteEnabled: true}\n  writers:\n"
                   "    - {serviceAccount: a/b, delete: true}\n")
    assert problems(text) == [
        "meshreg.yaml:5: spec.namespace: 'Bad' is not a valid name (lowercase RFC 1123 label: a-z, 0-9 and '-', at "
        "most 63 characters)",
        "meshreg.yaml:6: spec.registy: unknown key (did you mean 'registry'?)"]


def test_an_unknown_key_that_looks_like_no_other_is_reported_and_the_rest_still_checked():
    text = minimal("  extra: 1\n  writers:\n    - {serviceAccount: a/b, delete: true}\n")
    assert [p.split(": ")[1] for p in problems(text)] == ["spec.extra", "spec.writers[0].delete"]


def test_a_value_that_is_wrong_is_reported_once_and_nothing_that_depends_on_it():
    # role `mirrror` is wrong: neither "mirror settings belong to role: mirror" nor anything about the mirror follows
    text = minimal("  registries:\n    - {name: a, port: 5000, role: mirrror, mirror: {upstream: 'ftp://x'}}\n")
    assert problems(text) == ["meshreg.yaml:6: spec.registries[0].role: 'mirrror' is not a role (expected one of: "
                              "images, readonly, mirror)"]


def test_a_wrong_namespace_does_not_make_the_push_proxys_derived_namespace_wrong_too():
    text = minimal("  namespace: " + "x" * 70 + "\n  pushProxy: {repositories: [dev/]}\n")
    [line] = problems(text)
    assert line.startswith("meshreg.yaml:5: spec.namespace: ")


def test_every_registry_entry_is_checked_and_checks_across_them_wait_for_valid_entries():
    text = minimal("  registries:\n"
                   "    - {name: A, port: 80}\n"
                   "    - {name: b, port: 5001, role: mirror}\n"
                   "    - {name: c, port: 5001, role: mirror, mirror: {upstream: 'ftp://x'}, deleteEnabled: true}\n")
    assert [p.split(": ")[1] for p in problems(text)] == [
        "spec.registries[0].name", "spec.registries[0].port", "spec.registries[1].mirror",
        "spec.registries[2].deleteEnabled", "spec.registries[2].mirror.upstream"]  # no "5001 is already the port"


def test_duplicate_keys_are_all_reported_with_what_else_is_wrong():
    text = minimal("  namespace: a\n  namespace: b\n  trustDomain: x\n  trustDomain: y/z\n")
    assert problems(text) == [
        "meshreg.yaml:6: spec.namespace: duplicate key",
        "meshreg.yaml:8: spec.trustDomain: duplicate key",
        "meshreg.yaml:8: spec.trustDomain: 'y/z' is not a trust domain: it must not contain '/' (e.g. cluster.local)"]


def test_a_missing_required_key_is_reported_with_the_others():
    text = ("apiVersion: meshreg.dev/v1\nkind: Registry\nspec:\n  registries:\n"
            "    - {port: 5000}\n    - {name: b}\n")
    assert problems(text) == [
        "meshreg.yaml:1: missing required key 'metadata'",
        "meshreg.yaml:1: apiVersion: expected 'meshreg.dev/v1alpha1', got 'meshreg.dev/v1'",
        "meshreg.yaml:2: kind: expected 'MeshRegistry', got 'Registry'",
        "meshreg.yaml:5: spec.registries[0]: missing required key 'name'",
        "meshreg.yaml:6: spec.registries[1]: missing required key 'port'"]


def test_ingress_clients_and_issuers_are_each_checked(tmp_path):
    text = minimal("  ingress:\n    host: Registry.example.com\n    credentialName: cert\n"
                   "    issuers:\n      - {issuer: '', audiences: [a], jwksUri: https://x}\n"
                   "    clients:\n      - {name: A, method: mtls, repositories: [x/]}\n"
                   "      - {name: b, method: smoke, repositories: [Y/]}\n")
    path = tmp_path / "meshreg.yaml"
    with pytest.raises(ConfigError) as e:
        config.from_text(text, name=str(path))
    assert [p.split(": ")[1] for p in e.value.problems] == [
        "spec.ingress.host", "spec.ingress.issuers[0].issuer"]  # clients wait for the issuers they may name
    fixed = text.replace("issuer: ''", "issuer: https://x")
    with pytest.raises(ConfigError) as e:
        config.from_text(fixed, name=str(path))
    assert [p.split(": ")[1] for p in e.value.problems] == [
        "spec.ingress.host", "spec.ingress.clients[0].name", "spec.ingress.clients[1].method",
        "spec.ingress.clients[1].repositories[0]"]


@pytest.mark.parametrize(("data", "expected"), [
    (b"apiVersion: meshreg.dev/v1alpha1\nkind: MeshRegistry\nmetadata: {name: d\xe9v}\n",
     ["m.yaml:3:19: cannot read: byte 0xe9 (offset 70) is not UTF-8; save the file as UTF-8"]),
    ("# caf\u00e9\n".encode() + b"a: \xff\xfe\nb: ok\nc: \x80\n",
     ["m.yaml:2:4: cannot read: byte 0xff (offset 11) is not UTF-8; save the file as UTF-8",
      "m.yaml:4:4: cannot read: byte 0x80 (offset 23) is not UTF-8; save the file as UTF-8"]),
])
def test_bytes_that_are_not_utf8_are_named_by_line_column_and_offset(tmp_path, data, expected):
    path = tmp_path / "m.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as e:
        config.load(str(path))
    assert [p.replace(str(tmp_path) + "/", "") for p in e.value.problems] == expected


def test_a_crlf_file_reads_like_the_same_file_with_lf():
    text = minimal("  namespace: registry\n  writers:\n    - serviceAccount: a/b\n")
    assert config.from_text(text.replace("\n", "\r\n"), name="m.yaml") == config.from_text(text, name="m.yaml")
