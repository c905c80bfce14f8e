"""The writers list of one registry in a config file's text, edited in place: add or remove a writer, its
repository prefixes or its DELETE grant. Each edit is spliced at the offsets of the YAML nodes (meshreg.config.spans),
in the style of what is around it; meshreg.config.editing decides which edits a grant or revoke makes."""

from __future__ import annotations

import yaml

from meshreg.config import names
from meshreg.config.model import Writer
from meshreg.config.spans import Document, Layout, Quoted, Value, is_null, lookup

Prefixes = tuple[str, ...]  # repository prefixes, normalized ("team-a/") or "*"


class WritersList:
    """The writers list of one registry in a config's text, edited in place (each edit re-reads the text)."""

    def __init__(self, text: str, name: str, registry: str) -> None:
        self.text, self.name, self.registry = text, name, registry

    def add(self, entry: dict[str, Value]) -> str:
        doc = Document(self.text, self.name)
        holder = self._holder(doc)
        if holder is None:  # no spec at all, or `spec:` with nothing under it
            self.text = doc.put(doc.root, "spec", {"writers": [entry]}, _layout(doc))
            return self.text
        found = lookup(holder, "writers")
        if found is None or is_null(found[1]) or not found[1].value:
            doc.refuse_shared(holder, "the writers list")
            self.text = doc.put(holder, "writers", [entry], _layout(doc))
        else:
            doc.refuse_shared(found[1], "the writers list")
            self.text = doc.append(found[1], entry, _layout(doc, found[1]))
        return self.text

    def take(self, old: Writer, prefixes: Prefixes, *, delete: bool) -> bool:
        """Take `prefixes` (all of them: the whole writer) and, with `delete`, the DELETE grant from a writer; whether
        the writer went."""
        if set(prefixes) == set(old.repositories):
            self.remove(old.service_account)
            return True
        self.remove_prefixes(old.service_account, prefixes)
        if delete and old.delete:
            self.revoke_delete(old.service_account)
        return False

    def remove(self, identity: str) -> None:
        doc = Document(self.text, self.name)
        key, writers, index = self._writer(doc, identity)
        self.text = doc.remove(writers, index, key=key)

    def add_prefixes(self, identity: str, prefixes: Prefixes) -> None:
        doc = Document(self.text, self.name)
        entry = self._entry(doc, identity)
        found = lookup(entry, "repositories")
        assert found is not None, "a writer with prefixes to add is scoped, so it lists its repositories"
        if "*" in prefixes:  # in the list's own style
            block = isinstance(found[1], yaml.SequenceNode) and not found[1].flow_style
            layout = Layout(dash=_offset(doc, *found), block_lists=True) if block else Layout()
            self.text = doc.put(entry, "repositories", [Quoted("*")], layout)
        else:
            for prefix in prefixes:
                self.text = doc.append(found[1], Quoted(prefix), Layout())
                doc = Document(self.text, self.name)
                found = lookup(self._entry(doc, identity), "repositories")
                assert found is not None

    def remove_prefixes(self, identity: str, prefixes: Prefixes) -> None:
        for prefix in prefixes:
            doc = Document(self.text, self.name)
            found = lookup(self._entry(doc, identity), "repositories")
            assert found is not None, "a writer with prefixes to revoke lists its repositories"
            key, listed = found
            index = next(i for i, item in enumerate(listed.value)
                         if names.normalize_prefix(str(item.value)) == prefix)
            self.text = doc.remove(listed, index, key=key)

    def grant_delete(self, identity: str) -> None:
        doc = Document(self.text, self.name)
        self.text = doc.put(self._entry(doc, identity), "delete", True, Layout())

    def revoke_delete(self, identity: str) -> None:
        doc = Document(self.text, self.name)
        self.text = doc.drop(self._entry(doc, identity), "delete")

    def _holder(self, doc: Document) -> yaml.MappingNode | None:
        """The mapping holding the writers: spec, or the entry of spec.registries with the registry's name (None:
        there is no spec yet)."""
        found = lookup(doc.root, "spec")
        spec = found[1] if found and isinstance(found[1], yaml.MappingNode) else None
        registries = lookup(spec, "registries") if spec is not None else None
        if spec is None or registries is None:
            return spec
        entry = next(item for item in registries[1].value if _scalar(item, "name") == self.registry)
        assert isinstance(entry, yaml.MappingNode)
        for node in (spec, registries[1], entry):
            doc.refuse_shared(node, f"registry {self.registry}", deep=False)
        return entry

    def _writer(self, doc: Document, identity: str) -> tuple[yaml.Node, yaml.SequenceNode, int]:
        """The writers key, the writers list and the index of `identity`'s entry in it."""
        holder = self._holder(doc)
        found = lookup(holder, "writers") if holder is not None else None
        assert found is not None and isinstance(found[1], yaml.SequenceNode), "a writer is listed in writers"
        doc.refuse_shared(found[1], "the writers list")
        index = next(i for i, item in enumerate(found[1].value) if _scalar(item, "serviceAccount") == identity)
        return found[0], found[1], index

    def _entry(self, doc: Document, identity: str) -> yaml.MappingNode:
        _, writers, index = self._writer(doc, identity)
        entry = writers.value[index]
        assert isinstance(entry, yaml.MappingNode)
        return entry


def _layout(doc: Document, writers: yaml.Node | None = None) -> Layout:
    """How new lines are indented: like the file's nested mappings and lists, and, within a writers list, with block
    repository lists if a writer there has one (else `["*"]`, as `meshreg init` writes it)."""
    mapping = _mapping_indent(doc)
    for item in writers.value if isinstance(writers, yaml.SequenceNode) else []:
        found = lookup(item, "repositories")
        if found and _is_block_list(found[1]):
            return Layout(mapping=mapping, dash=_offset(doc, *found), block_lists=True)
    blocks = [(k, v) for k, v in _pairs(doc.root) if _is_block_list(v)]
    return Layout(mapping=mapping, dash=_offset(doc, *blocks[0]) if blocks else 2)


def _mapping_indent(doc: Document) -> int:
    """How far the file indents a nested block mapping (2 when it has none)."""
    nested = [v for _, v in doc.root.value if isinstance(v, yaml.MappingNode) and not v.flow_style and v.value]
    return nested[0].value[0][0].start_mark.column if nested else 2


def _is_block_list(node: yaml.Node) -> bool:
    return isinstance(node, yaml.SequenceNode) and not node.flow_style and bool(node.value)


def _offset(doc: Document, key: yaml.Node, listed: yaml.Node) -> int:
    """How far a block list's dashes are indented from its key."""
    assert isinstance(listed, yaml.SequenceNode)
    return max(doc.column(doc.dash(listed.value[0])) - key.start_mark.column, 0)


def _scalar(mapping: yaml.Node, key: str) -> str | None:
    found = lookup(mapping, key)
    return str(found[1].value) if found and isinstance(found[1], yaml.ScalarNode) else None


def _pairs(node: yaml.Node) -> list[tuple[yaml.Node, yaml.Node]]:
    """Every key and value of every mapping in the tree, outermost first."""
    out: list[tuple[yaml.Node, yaml.Node]] = []
    todo = [node]
    while todo:
        current = todo.pop(0)
        if isinstance(current, yaml.MappingNode):
            out += current.value
            todo += [v for _, v in current.value]
        elif isinstance(current, yaml.SequenceNode):
            todo += current.value
    return out
