"""`policy grant`/`revoke` change only the bytes of the writer they edit: line endings, flow entries, comments,
unicode and a missing final newline stay as they were, and a grant then the matching revoke gives back the file byte
for byte (property-tested over generated files)."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from meshreg import config
from meshreg.config import Writer, editing, starter
from support.config_files import IDENTITIES, PREFIXES, Written, config_files

EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def insertion(old: str, new: str) -> str:
    """What `new` inserts into `old` at one place, keeping every byte of `old` (a `writers: []` may lose its ` []`
    when it becomes a block list)."""
    for start in [-1] + [i for i in range(len(old)) if old.startswith(" []", i)]:
        kept = old if start < 0 else old[:start] + old[start + 3:]
        prefix = next((i for i, (a, b) in enumerate(zip(kept, new, strict=False)) if a != b), len(kept))
        suffix = next((i for i in range(len(kept)) if kept[len(kept) - 1 - i] != new[len(new) - 1 - i]), len(kept))
        if len(new) > len(kept) and prefix + suffix >= len(kept):
            at = min(prefix, len(kept))  # the last place it fits: after the item before it
            return new[at:at + len(new) - len(kept)]
    raise AssertionError(f"not one insertion:\n{old!r}\n{new!r}")


def one_line_ending(text: str, newline: str) -> bool:
    return ("\r\n" in text.replace(newline, "") or "\n" in text.replace(newline, "")) is False if newline == "\n" \
        else "\n" not in text.replace("\r\n", "")


def registry_of(written: Written, draw) -> str | None:
    return draw(st.sampled_from(sorted(written.writers, key=str)))


@EXAMPLES
@given(written=config_files(), data=st.data())
def test_a_new_writer_is_added_without_touching_other_bytes_and_revoking_it_restores_the_file(written, data):
    registry = registry_of(written, data.draw)
    absent = [i for i in IDENTITIES if i not in written.writers[registry]]
    identity = data.draw(st.sampled_from(absent))
    prefixes = tuple(data.draw(st.lists(st.sampled_from(PREFIXES), max_size=2, unique=True)))
    deletes = config.from_text(written.text, name="m.yaml").get_registry(registry).delete_enabled
    delete = deletes and data.draw(st.booleans())

    edit = editing.grant(written.text, name="m.yaml", identity=identity, repositories=prefixes, delete=delete,
                         registry=registry)
    added = insertion(written.text, edit.text)
    assert identity in added and one_line_ending(edit.text, written.newline)
    assert edit.after == Writer(identity, tuple(sorted(prefixes)) or ("*",), delete)
    assert edit.text.endswith(written.newline) == written.text.endswith(written.newline)

    back = editing.revoke(edit.text, name="m.yaml", identity=identity, registry=registry)
    assert back.text == written.text


@EXAMPLES
@given(written=config_files(), data=st.data())
def test_a_prefix_granted_to_a_writer_and_revoked_again_restores_the_file(written, data):
    scoped = [(reg, identity, repos) for reg, said in written.writers.items()
              for identity, (repos, _) in said.items() if repos and len(repos) < len(PREFIXES)]
    assume(scoped)
    registry, identity, repos = data.draw(st.sampled_from(scoped))
    prefix = data.draw(st.sampled_from([p for p in PREFIXES if p not in repos]))

    edit = editing.grant(written.text, name="m.yaml", identity=identity, repositories=(prefix,), registry=registry)
    assert prefix in insertion(written.text, edit.text) and one_line_ending(edit.text, written.newline)
    assert edit.after is not None and edit.after.repositories == tuple(sorted((*repos, prefix)))

    back = editing.revoke(edit.text, name="m.yaml", identity=identity, repositories=(prefix,), registry=registry)
    assert back.text == written.text


@EXAMPLES
@given(written=config_files(), data=st.data())
def test_the_delete_grant_added_and_revoked_again_restores_the_file(written, data):
    cfg = config.from_text(written.text, name="m.yaml")
    candidates = [(reg, identity) for reg, said in written.writers.items() for identity, (_, delete) in said.items()
                  if not delete and cfg.get_registry(reg).delete_enabled]
    assume(candidates)
    registry, identity = data.draw(st.sampled_from(candidates))

    edit = editing.grant(written.text, name="m.yaml", identity=identity, delete=True, registry=registry)
    assert "delete: true" in insertion(written.text, edit.text) and edit.after is not None and edit.after.delete

    back = editing.revoke(edit.text, name="m.yaml", identity=identity, delete=True, registry=registry)
    assert back.text == written.text


@EXAMPLES
@given(written=config_files(), data=st.data())
def test_granting_what_a_writer_has_or_revoking_what_it_lacks_leaves_the_file_alone(written, data):
    registry = registry_of(written, data.draw)
    said = written.writers[registry]
    if said:
        identity = data.draw(st.sampled_from(sorted(said)))
        repos, delete = said[identity]
        edit = editing.grant(written.text, name="m.yaml", identity=identity, repositories=repos or ("*",),
                             delete=delete, registry=registry)
    else:
        edit = editing.revoke(written.text, name="m.yaml", identity=IDENTITIES[0], registry=registry)
    assert (edit.changed, edit.text) == (False, written.text)


def test_a_crlf_file_stays_crlf_on_every_line():
    text = starter.TEXT.replace("\n", "\r\n")
    granted = editing.grant(text, name="m.yaml", identity="builds/kaniko", repositories=("team-a",)).text
    widened = editing.grant(granted, name="m.yaml", identity="builds/kaniko", repositories=("team-b",),
                            delete=False).text
    lines = widened.splitlines(keepends=True)
    assert len(lines) == len(text.splitlines()) + 2 and all(line.endswith("\r\n") for line in lines)
    revoked = editing.revoke(widened, name="m.yaml", identity="builds/kaniko", repositories=("team-b",)).text
    assert revoked == granted
    assert editing.revoke(revoked, name="m.yaml", identity="builds/kaniko").text == text


FLOW = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: dev}
spec:
  registry: { deleteEnabled: true }
  writers:
    - { serviceAccount: a/b , repositories: [ 'team-a' ] }   # spaced as its author likes
    - serviceAccount: c/d"""


def test_untouched_flow_entries_keep_their_spacing_and_a_missing_final_newline_stays_missing():
    new = editing.grant(FLOW, name="m.yaml", identity="e/f", delete=True).text
    assert new == FLOW + '\n    - serviceAccount: e/f\n      repositories: ["*"]\n      delete: true'
    widened = editing.grant(new, name="m.yaml", identity="a/b", repositories=("team-b",)).text
    assert "    - { serviceAccount: a/b , repositories: [ 'team-a', \"team-b/\" ] }   # spaced as its author likes" \
        in widened


def test_a_writer_is_added_to_the_named_registry_only():
    text = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: dev}
spec:
  registries:
    - {name: images, port: 5000, default: true, writers: [{serviceAccount: a/b}]}
    - name: more
      port: 5001
"""
    first = editing.grant(text, name="m.yaml", identity="c/d", registry="images").text
    assert "writers: [{serviceAccount: a/b}, {serviceAccount: c/d, repositories: [\"*\"]}]}" in first
    second = editing.grant(first, name="m.yaml", identity="c/d", registry="more").text
    assert second == first + '      writers:\n        - serviceAccount: c/d\n          repositories: ["*"]\n'
    assert editing.revoke(second, name="m.yaml", identity="c/d", registry="more").text == \
        first + "      writers: []\n"  # a key the grant added stays, as an empty list


def test_an_entry_shared_through_a_yaml_anchor_is_not_edited():
    import pytest

    from meshreg.errors import ConfigError

    text = """\
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: dev}
spec:
  registries:
    - {name: a, port: 5000, default: true, writers: &w [{serviceAccount: a/b, repositories: [x/]}]}
    - {name: b, port: 5001, writers: *w}
"""
    with pytest.raises(ConfigError, match="uses YAML anchors or aliases; edit it by hand"):
        editing.grant(text, name="m.yaml", identity="a/b", repositories=("y",), registry="a")
