"""Round-trip edits of the writers list: comments, order, quotes and layout survive; refusals change nothing."""

from __future__ import annotations

import difflib

import pytest

from meshreg.config import editing, starter
from meshreg.errors import UsageError

STYLED = """\
# top comment
apiVersion: meshreg.dev/v1alpha1
kind: MeshRegistry
metadata: {name: dev}
spec:
    trustDomain: 'cluster.local'   # single quotes, 4-space indent
    readers: ["*"]
    writers:
      - serviceAccount: ci/builder   # the CI
        repositories:
          - team-a
    # trailing comment
"""


def changed(old: str, new: str) -> list[str]:
    return [line for line in difflib.ndiff(old.splitlines(), new.splitlines()) if line[:1] in "+-"]


def test_granting_the_first_writer_changes_only_the_writers_line():
    new = editing.grant(starter.TEXT, name="m.yaml", identity="builds/kaniko").text
    assert changed(starter.TEXT, new) == ["-   writers: []", "+   writers:", "+     - serviceAccount: builds/kaniko",
                                          '+       repositories: ["*"]']


def test_grant_then_revoke_gives_back_the_same_bytes():
    granted = editing.grant(starter.TEXT, name="m.yaml", identity="builds/kaniko").text
    assert editing.revoke(granted, name="m.yaml", identity="builds/kaniko").text == starter.TEXT


def test_adding_a_prefix_keeps_the_users_indentation_quotes_and_comments():
    new = editing.grant(STYLED, name="m.yaml", identity="ci/builder", repositories=("team-b",)).text
    assert changed(STYLED, new) == ['+           - "team-b/"']


def test_a_new_writer_follows_the_existing_layout():
    new = editing.grant(STYLED, name="m.yaml", identity="a/b").text
    assert changed(STYLED, new) == ["+       - serviceAccount: a/b", "+         repositories:", '+           - "*"']


def test_removing_the_last_prefix_removes_the_writer():
    text = editing.grant(starter.TEXT, name="m.yaml", identity="ci/b", repositories=("team-a",)).text
    edit = editing.revoke(text, name="m.yaml", identity="ci/b", repositories=("team-a/",))
    assert (edit.after, edit.text) == (None, starter.TEXT)


def test_revoking_the_last_writer_keeps_the_comment_after_the_list():
    new = editing.revoke(STYLED, name="m.yaml", identity="ci/builder").text
    assert changed(STYLED, new) == ["-     writers:", "+     writers: []",
                                    "-       - serviceAccount: ci/builder   # the CI", "-         repositories:",
                                    "-           - team-a"]
    assert "    # trailing comment\n" in new


@pytest.mark.parametrize(("action", "kwargs", "message"), [
    (editing.grant, {"identity": "Bad"}, "'Bad' is not a workload identity"),
    (editing.grant, {"identity": "meshreg/node-proxy"}, "is the node proxy"),
    (editing.grant, {"identity": "ci/builder"},
     "is already a writer (repositories: team-a/); add prefixes with --repo"),
    (editing.revoke, {"identity": "ci/builder", "repositories": ("team-a/app",)},
     "ci/builder is not granted team-a/app/ itself but team-a/, which covers it; revoke that prefix instead"),
])
def test_refused_edits_raise_one_usage_error(action, kwargs, message):
    with pytest.raises(UsageError) as e:
        action(STYLED, name="m.yaml", **kwargs)
    assert message in str(e.value)


def test_narrowing_a_writer_of_every_repository_is_refused():
    text = editing.grant(STYLED, name="m.yaml", identity="a/b").text
    with pytest.raises(UsageError, match="writes every repository"):
        editing.revoke(text, name="m.yaml", identity="a/b", repositories=("team-a",))


@pytest.mark.parametrize(("action", "kwargs", "note"), [
    (editing.grant, {"identity": "ci/builder", "repositories": ("team-a/app",)},
     "ci/builder already writes team-a/app/ (by team-a/)"),
    (editing.grant, {"identity": "ci/builder", "repositories": ("team-a",)}, "ci/builder already writes team-a/"),
    (editing.revoke, {"identity": "not/writer"}, "not/writer is not a writer: nothing to revoke"),
    (editing.revoke, {"identity": "not/writer", "repositories": ("x",)}, "not/writer is not a writer"),
    (editing.revoke, {"identity": "ci/builder", "repositories": ("team-b",)},
     "ci/builder is not granted team-b/: nothing to revoke"),
    (editing.revoke, {"identity": "ci/builder", "delete": True}, "ci/builder has no DELETE grant: nothing to revoke"),
])
def test_what_is_already_so_is_unchanged_and_keeps_the_text(action, kwargs, note):
    edit = action(STYLED, name="m.yaml", **kwargs)
    assert (edit.changed, edit.text, edit.before, edit.after) == (False, STYLED, edit.before, edit.before)
    assert edit.note.startswith(note)


def test_granting_a_writer_of_every_repository_again_is_unchanged():
    text = editing.grant(starter.TEXT, name="m.yaml", identity="builds/kaniko").text
    for kwargs in ({}, {"repositories": ("team-a/",)}, {"repositories": ("*",)}):
        edit = editing.grant(text, name="m.yaml", identity="builds/kaniko", **kwargs)
        assert (edit.changed, edit.text) == (False, text)
        assert edit.note == 'builds/kaniko is already a writer of every repository ("*")'


def test_write_atomically_keeps_the_file_mode(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("old")
    path.chmod(0o640)
    editing.write_atomically(str(path), "new")
    assert (path.read_text(), path.stat().st_mode & 0o777, len(list(tmp_path.iterdir()))) == ("new", 0o640, 1)
