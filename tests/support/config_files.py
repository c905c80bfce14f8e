"""Config files as people write them, for the property tests of `policy grant`/`revoke`: block and flow styles,
2- or 4-space indentation, lists with or without indented dashes, comments in every place, unicode, CRLF or LF, a
final newline or none, one registry or several."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

IDENTITIES = ["builds/kaniko", "ci/builder", "team-a/bot", "tekton/buildah", "gitpod/image-builder"]
PREFIXES = ["team-a/", "team-b/", "shared/base/", "dev/"]  # none covers another


@dataclass
class Written:
    """A generated file and what it says: registry name -> {identity: (prefixes or None for "*", delete)}."""

    text: str
    newline: str
    writers: dict[str | None, dict[str, tuple[tuple[str, ...] | None, bool]]] = field(default_factory=dict)


def spelled(draw, prefix: str) -> str:
    """A prefix as someone might write it: plain, double-quoted, single-quoted without its slash."""
    return draw(st.sampled_from([prefix, f'"{prefix}"', f"'{prefix.rstrip('/')}'"]))


def _entry(draw, identity: str, *, deletes: bool) -> tuple[dict, tuple[tuple[str, ...] | None, bool]]:
    repos = draw(st.one_of(st.none(), st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=3, unique=True)))
    delete = deletes and draw(st.booleans())
    return {"identity": identity, "repos": repos, "delete": delete}, (tuple(repos) if repos else None, delete)


def _flow_entry(draw, e: dict) -> str:
    parts = [f"serviceAccount: {e['identity']}"]
    if e["repos"]:
        parts.append("repositories: [" + ", ".join(spelled(draw, p) for p in e["repos"]) + "]")
    if e["delete"]:
        parts.append("delete: true")
    return "{" + ", ".join(parts) + "}"


def _block_entry(draw, e: dict, dash: int, off: int) -> list[str]:
    """A writer as a block mapping whose dash is at column `dash`; nested dashes `off` columns in."""
    key = dash + 2
    comment = draw(st.sampled_from(["", "   # the builder", "  # ünïcode ✓"]))
    lines = [" " * dash + f"- serviceAccount: {e['identity']}{comment}"]
    if e["repos"]:
        if draw(st.booleans()):
            lines.append(" " * key + "repositories: [" + ", ".join(spelled(draw, p) for p in e["repos"]) + "]")
        else:
            lines.append(" " * key + "repositories:")
            lines += [" " * (key + off) + f"- {spelled(draw, p)}" for p in e["repos"]]
    if e["delete"]:
        lines.append(" " * key + "delete: true")
    if draw(st.integers(0, 4)) == 0:
        lines.append(" " * (key + 2) + "# more about this writer")
    return lines


def _writers(draw, key: int, off: int, *, deletes: bool, flow_only: bool = False):
    """The lines of `writers:` at column `key` (one flow line with flow_only), and what they say."""
    ids = draw(st.lists(st.sampled_from(IDENTITIES), max_size=3, unique=True))
    entries, said = [], {}
    for identity in ids:
        e, says = _entry(draw, identity, deletes=deletes)
        entries.append(e)
        said[identity] = says
    form = "flow" if flow_only and entries else draw(st.sampled_from(["flow", "block"])) if entries else "empty"
    if form == "empty":
        return [" " * key + "writers: []" + ("" if flow_only else draw(st.sampled_from(["", "   # nobody yet"])))], said
    if form == "flow":
        return [" " * key + "writers: [" + ", ".join(_flow_entry(draw, e) for e in entries) + "]"], said
    lines = [" " * key + "writers:" + draw(st.sampled_from(["", "  # who may push"]))]
    dash = key + off
    for i, e in enumerate(entries):
        if i and draw(st.integers(0, 3)) == 0:
            lines.append(" " * dash + "# next writer")
        if draw(st.integers(0, 3)) == 0:
            lines.append(" " * dash + f"- {_flow_entry(draw, e)}")
        else:
            lines += _block_entry(draw, e, dash, off)
    return lines, said


@st.composite
def config_files(draw) -> Written:
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    ind, off = draw(st.sampled_from([2, 4])), draw(st.sampled_from([0, 2]))
    sp = " " * ind
    lines = ["# meshreg — ünïcode ✓"] if draw(st.booleans()) else []
    lines += ["apiVersion: meshreg.dev/v1alpha1", "kind: MeshRegistry"]
    lines += draw(st.sampled_from([["metadata: {name: dev}"], ["metadata:", f"{sp}name: dev   # the instance"]]))
    lines.append("spec:")
    if draw(st.booleans()):
        lines.append(f'{sp}localRegistryHosting: {{help: "Pushen: ünïcode ✓"}}')
    written = Written(text="", newline=nl)
    if draw(st.booleans()):
        lines += _several(draw, written, ind, off)
    else:
        deletes = draw(st.booleans())
        lines.append(f"{sp}registry: {{deleteEnabled: {str(deletes).lower()}}}")
        writer_lines, written.writers[None] = _writers(draw, ind, off, deletes=deletes)
        lines += writer_lines
    if draw(st.booleans()):
        lines.append(f"{sp}# trailing comment, ünïcode ✓")
    written.text = nl.join(lines) + (nl if draw(st.booleans()) else "")
    return written


def _several(draw, written: Written, ind: int, off: int) -> list[str]:
    lines = [" " * ind + "registries:"]
    dash = ind + off
    for i in range(draw(st.integers(1, 3))):
        name, deletes = f"r{i}", draw(st.booleans())
        keys = [f"port: {5000 + i}", f"default: {str(i == 0).lower()}", f"deleteEnabled: {str(deletes).lower()}"]
        if draw(st.integers(0, 3)) == 0:  # the whole entry in flow style
            [writers], said = _writers(draw, 0, off, deletes=deletes, flow_only=True)
            lines.append(" " * dash + "- {" + ", ".join([f"name: {name}", *keys, writers]) + "}")
        else:
            lines.append(" " * dash + f"- name: {name}")
            lines += [" " * (dash + 2) + key for key in keys]
            writer_lines, said = _writers(draw, dash + 2, off, deletes=deletes)
            lines += writer_lines
        written.writers[name] = said
    return lines
