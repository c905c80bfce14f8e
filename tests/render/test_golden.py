"""Golden files: a reviewer sees every change to what users apply. `pytest --update-golden` rewrites them."""

from __future__ import annotations

import pytest

from meshreg import config
from meshreg.render import manifests, render
from support.configs import AMBIENT, RUNTIME_CONFIG, SEVERAL_WRITERS
from support.paths import ROOT

GOLDEN = ROOT / "tests" / "golden"
CASES = {"default": None, "several-writers": SEVERAL_WRITERS, "ambient": AMBIENT, "runtime-config": RUNTIME_CONFIG}


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_matches_the_golden_file(case, update_golden):
    text = CASES[case]
    cfg = config.DEFAULT if text is None else config.from_text(text, name=f"{case}.yaml")
    rendered = manifests.dump_all(render(cfg))
    path = GOLDEN / f"{case}.yaml"
    if update_golden:
        path.write_text(rendered)
    assert path.exists(), f"missing {path}: run pytest tests/render/test_golden.py --update-golden"
    hint = "review, then pytest tests/render/test_golden.py --update-golden"
    assert rendered == path.read_text(), f"{path.name} differs: {hint}"
