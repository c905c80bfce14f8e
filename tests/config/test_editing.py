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


def test_an_edit_that_would_drop_a_comment_is_refused():
    from meshreg.errors import ConfigError

    with pytest.raises(ConfigError):  # ruamel attaches "# trailing comment" to the last writer's last line
        editing.revoke(STYLED, name="m.yaml", identity="ci/builder")


@pytest.mark.parametrize(("action", "kwargs"), [
    (editing.grant, {"identity": "ci/builder", "repositories": ("team-a/app",)}),  # already covered
    (editing.grant, {"identity": "Bad"}),
    (editing.grant, {"identity": "meshreg/node-proxy"}),
    (editing.revoke, {"identity": "not/writer"}),
    (editing.revoke, {"identity": "ci/builder", "repositories": ("team-b",)}),
])
def test_refused_edits_raise_one_usage_error(action, kwargs):
    with pytest.raises(UsageError):
        action(STYLED, name="m.yaml", **kwargs)


def test_write_atomically_keeps_the_file_mode(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("old")
    path.chmod(0o640)
    editing.write_atomically(str(path), "new")
    assert (path.read_text(), path.stat().st_mode & 0o777, len(list(tmp_path.iterdir()))) == ("new", 0o640, 1)
