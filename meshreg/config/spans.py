"""Edits YAML text at the offsets where its nodes start and end, so that every byte outside an edit stays as it was:
comments, quotes, flow or block style, indentation, line endings (CRLF stays CRLF), a missing final newline.

PyYAML's composer gives each node its start and end offset in the text. A block collection ends where the next token
starts (after the comments that follow it), so `end` finds where its content really ends from its last child. New
values are written in the style of their surroundings: block lines in a block collection (with the file's own line
ending and indentation), `{...}` and `[...]` inside a flow one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import yaml

from meshreg.errors import ConfigError

Node = yaml.Node
Value = dict[str, "Value"] | list["Value"] | str | bool  # what an edit writes
_PLAIN = re.compile(r"[a-z0-9][a-z0-9._/-]*")
_SPECIAL = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


class Quoted(str):
    """A string written double-quoted, whatever it holds (repository prefixes, as `meshreg init` writes them)."""

    __slots__ = ()


@dataclass(frozen=True)
class Layout:
    """How new block lines are indented: `mapping` columns for the keys of a nested mapping, `dash` columns from a
    key to the dashes of its list; `block_lists`: lists inside a new entry are block lists, not `[...]`."""

    mapping: int = 2
    dash: int = 2
    block_lists: bool = False


class Document:
    """One YAML document: its text and its node tree, with the nodes that anchors or aliases share."""

    def __init__(self, text: str, name: str) -> None:
        self.text, self.name = text, name
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as e:  # config.from_text has accepted the text already: unexpected
            raise ConfigError(f"{name}: cannot edit this file: {str(e).splitlines()[0]}") from e
        finally:
            loader.dispose()
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError(f"{name}: cannot edit this file: the document is not a mapping")
        self.root: yaml.MappingNode = root
        self.shared = frozenset(loader.shared)

    def refuse_shared(self, node: Node, where: str, *, deep: bool = True) -> None:
        """An edit inside a node that an anchor shares (`deep`: or of a node under it) would change every alias of it
        too."""
        if any(id(n) in self.shared for n in (walk(node) if deep else [node])):
            raise ConfigError(f"{self.name}: cannot edit {where}: it uses YAML anchors or aliases; edit it by hand")

    # --- where things are
    def end(self, node: Node) -> int:
        """Where the node's own text ends (before the comments and blank lines that follow a block collection)."""
        if isinstance(node, yaml.ScalarNode):
            end = node.end_mark.index
            while node.style in ("|", ">") and end > node.start_mark.index and self.text[end - 1] in " \r\n":
                end -= 1
            return end
        if not isinstance(node, yaml.CollectionNode) or node.flow_style or not node.value:
            return int(node.end_mark.index)
        if isinstance(node, yaml.MappingNode):
            key, value = node.value[-1]
            return max(self.end(key), self.end(value))
        return self.end(node.value[-1])

    def line_end(self, i: int) -> int:
        """Where the line holding offset `i` ends (its line break, or the end of the text)."""
        found = re.compile(r"\r\n|\n").search(self.text, i)
        return found.start() if found else len(self.text)

    def line_start(self, i: int) -> int:
        return self.text.rfind("\n", 0, i) + 1

    def newline(self, i: int) -> str:
        """The line break of the line holding `i`; on a last line without one, the file's usual break."""
        end = self.line_end(i)
        if end < len(self.text):
            return "\r\n" if self.text.startswith("\r\n", end) else "\n"
        return "\r\n" if "\r\n" in self.text else "\n"

    def column(self, i: int) -> int:
        return i - self.line_start(i)

    def break_before(self, i: int) -> int:
        """Where the line break before the line holding `i` starts."""
        start = self.line_start(i)
        return start - 2 if self.text.startswith("\r\n", start - 2) else start - 1

    def dash(self, item: Node) -> int:
        """The offset of the `-` that starts a block sequence item."""
        i = item.start_mark.index - 1
        while self.text[i] in " \t\r\n":
            i -= 1
        return i

    def item_end(self, item: Node, dash_column: int) -> int:
        """Where a block sequence item ends: its own text, then the comment lines right after it that are indented
        deeper than its dash (they belong to it)."""
        end = self.line_end(self.end(item))
        while end < len(self.text):
            start = end + (2 if self.text.startswith("\r\n", end) else 1)
            line = self.text[start:self.line_end(start)]
            if not (line.lstrip(" ").startswith("#") and len(line) - len(line.lstrip(" ")) > dash_column):
                break
            end = self.line_end(start)
        return end

    def colon(self, key: Node) -> int:
        """The offset just after the `:` that follows a mapping key."""
        i = self.end(key)
        while self.text[i] != ":":
            i += 1
        return i + 1

    def splice(self, start: int, end: int, text: str = "") -> str:
        return self.text[:start] + text + self.text[end:]

    # --- edits: each returns the new text
    def append(self, seq: Node, value: Value, layout: Layout) -> str:
        """`value` as the new last item of a non-empty list, in the style of the item before it."""
        assert isinstance(seq, yaml.SequenceNode) and seq.value, seq
        last = seq.value[-1]
        if seq.flow_style:
            return self.splice(self.end(last), self.end(last), ", " + flow(value))
        dash = self.column(self.dash(last))
        nl = self.newline(self.end(last))
        if isinstance(last, yaml.MappingNode) and not last.flow_style:
            on_dash_line = self.line_start(last.start_mark.index) == self.line_start(self.dash(last))
            lines = item_lines(value, dash, layout, key_column=last.start_mark.column if on_dash_line else None)
        else:
            lines = [" " * dash + "- " + flow(value)]
        at = self.item_end(last, dash)
        return self.splice(at, at, nl + nl.join(lines))

    def remove(self, seq: Node, index: int, *, key: Node) -> str:
        """The list without item `index`; a block list left empty becomes `key: []`."""
        assert isinstance(seq, yaml.SequenceNode), seq
        items, item = seq.value, seq.value[index]
        if seq.flow_style:
            if len(items) == 1:
                return self.splice(item.start_mark.index, self.end(item))
            if index:
                return self.splice(self.end(items[index - 1]), self.end(item))
            return self.splice(item.start_mark.index, items[1].start_mark.index)
        cut = self.splice(self.break_before(self.dash(item)), self.item_end(item, self.column(self.dash(item))))
        if len(items) > 1:
            return cut
        colon = self.colon(key)
        return cut[:colon] + " []" + cut[colon:]

    def put(self, mapping: yaml.MappingNode, key: str, value: Value, layout: Layout) -> str:
        """Set `key` (null or an empty list now) to `value`, or add it as the mapping's last key."""
        pair = lookup(mapping, key)
        if pair is None:
            return self._add(mapping, key, value, layout)
        key_node, old = pair
        start, end = old.start_mark.index, self.end(old)
        if mapping.flow_style:
            return self.splice(start, end, flow(value))
        lines = block(key, value, key_node.start_mark.column, layout)
        colon = self.colon(key_node)
        if len(lines) == 1:  # a scalar or a [...] list: on the key's own line
            return self.splice(colon, end, " " + flow(value))
        at, nl = self.line_end(end), self.newline(end)
        return self.text[:colon] + self.text[end:at] + nl + nl.join(lines[1:]) + self.text[at:]

    def _add(self, mapping: yaml.MappingNode, key: str, value: Value, layout: Layout) -> str:
        if mapping.flow_style:
            if not mapping.value:
                return self.splice(mapping.start_mark.index + 1, mapping.start_mark.index + 1, f"{key}: {flow(value)}")
            end = self.end(mapping.value[-1][1])
            return self.splice(end, end, f", {key}: {flow(value)}")
        end = self.end(mapping)
        at, nl = self.line_end(end), self.newline(end)
        return self.splice(at, at, nl + nl.join(block(key, value, mapping.value[0][0].start_mark.column, layout)))

    def drop(self, mapping: yaml.MappingNode, key: str) -> str:
        """The mapping without `key` (never its only key)."""
        pairs = mapping.value
        index = next(i for i, (k, _) in enumerate(pairs) if k.value == key)
        (key_node, value), next_key = pairs[index], pairs[index + 1][0] if index + 1 < len(pairs) else None
        if index == 0 and next_key is not None:  # the next key takes its place (after a dash, say)
            return self.splice(key_node.start_mark.index, next_key.start_mark.index)
        before = self.end(pairs[index - 1][1])
        if mapping.flow_style:
            return self.splice(before, self.end(value))
        return self.splice(self.break_before(key_node.start_mark.index), self.line_end(self.end(value)))


def lookup(mapping: Node, key: str) -> tuple[Node, Node] | None:
    """The key and value nodes of `key` in a mapping node."""
    if not isinstance(mapping, yaml.MappingNode):
        return None
    return next(((k, v) for k, v in mapping.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def is_null(node: Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def walk(node: Node) -> list[Node]:
    """The node and every node under it."""
    out = [node]
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out += walk(key) + walk(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out += walk(item)
    return out


def flow(value: Value) -> str:
    """`value` in flow style: `{serviceAccount: a/b, repositories: ["*"]}`."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Quoted) or not _PLAIN.fullmatch(value) or value in _SPECIAL:
        return json.dumps(value, ensure_ascii=False)
    return value


def block(key: str, value: Value, column: int, layout: Layout) -> list[str]:
    """The lines of `key: value` at `column`: a list as dashes (or `[...]` unless layout.block_lists), a mapping as
    keys indented by layout.mapping."""
    head = " " * column + f"{key}:"
    if isinstance(value, dict):
        return [head] + [line for k, v in value.items() for line in block(k, v, column + layout.mapping, layout)]
    if isinstance(value, list) and value and (layout.block_lists or isinstance(value[0], dict)):
        return [head] + [line for item in value for line in item_lines(item, column + layout.dash, layout)]
    return [f"{head} {flow(value)}"]


def item_lines(value: Value, dash: int, layout: Layout, *, key_column: int | None = None) -> list[str]:
    """The lines of one block sequence item whose dash is at column `dash` (its keys at `key_column`)."""
    if not isinstance(value, dict):
        return [" " * dash + "- " + flow(value)]
    keys = dash + 2 if key_column is None else key_column
    lines = [line for k, v in value.items() for line in block(k, v, keys, layout)]
    return [" " * dash + "-" + lines[0][dash + 1:]] + lines[1:]


class _Loader(yaml.SafeLoader):
    """PyYAML's pure-Python loader (its marks count characters of the text), noting nodes anchors share."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.shared: set[int] = set()

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        anchored = not self.check_event(yaml.AliasEvent) and getattr(self.peek_event(), "anchor", None)  # type: ignore[no-untyped-call]
        node = super().compose_node(parent, index)
        if anchored and node is not None:  # aliases of it return this same node
            self.shared.add(id(node))
        return node
