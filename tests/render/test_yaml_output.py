"""A registry's config.yml comes from libyaml's emitter byte for byte as PyYAML's own wrote it, so switching
emitters (for speed) changes no rendered object and no config hash."""

from __future__ import annotations

import string

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from meshreg import config
from meshreg.render import registry, yamltext
from support.configs import GC_CONFIG, RUNTIME_CONFIG, SEVERAL_WRITERS

# What a config.yml holds: meshreg's own keys, and values that are numbers, booleans, nulls or text of printable
# ASCII (validated names, URLs, paths), nested, and lists of them.
text = st.text(alphabet=string.printable, max_size=120)
scalars = st.one_of(text, st.integers(), st.floats(allow_nan=False), st.booleans(), st.none())
keys = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_.-]{0,19}", fullmatch=True)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(keys, inner, max_size=5)), max_leaves=25)
documents = st.dictionaries(keys, values, max_size=6)
PYYAML = {"sort_keys": False, "default_flow_style": False}


@settings(max_examples=150, deadline=None)
@given(documents)
def test_libyaml_writes_what_pyyaml_wrote(document: dict) -> None:
    assert yamltext.safe_dump(document, **PYYAML) == yaml.safe_dump(document, **PYYAML)


def test_every_registry_config_is_what_pyyaml_wrote() -> None:
    for text_ in (SEVERAL_WRITERS, GC_CONFIG, RUNTIME_CONFIG):
        cfg = config.from_text(text_, name="m.yaml")
        for reg in cfg.registries:
            assert registry.config_text(cfg, reg) == yaml.safe_dump(registry.distribution_config(cfg, reg), **PYYAML)


def test_the_fast_emitter_is_in_use() -> None:
    assert yamltext._Dumper is yaml.CSafeDumper
