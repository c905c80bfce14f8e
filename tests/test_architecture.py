"""The import rules between meshreg's parts (pyproject.toml, [tool.importlinter]) hold, and do catch a break."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from support.paths import ROOT

LINT_IMPORTS = pathlib.Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: pathlib.Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is not installed: pip install -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the copy under test, ahead of the installed meshreg
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_every_import_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("render/labels.py", "import kubernetes", "config, render and policy are pure"),
    ("config/model.py", "from meshreg.cluster import client", "config, render and policy are pure"),
    ("cli/options.py", "import kubernetes.client", "cluster is the only part that imports the Kubernetes client"),
    ("cluster/wait.py", "from meshreg.cli import options", "nothing imports the CLI but the entry points"),
    # A lazy import inside a function counts as much as one at the top.
    ("policy/evaluate.py", "def _late():\n    from meshreg.cluster import apply", "config, render and policy are pure"),
    # The cycle config.py <-> configreading.py that the regrouping removed, brought back.
    ("config/model.py", "def _late():\n    from meshreg.config.spec import read_config",
     "the config part reads top-down"),
    # The gc Job runs meshreg/gcjob with a bare Python image: nothing outside the standard library.
    ("gcjob/run.py", "import yaml", "gcjob uses the standard library only"),
    ("gcjob/retention.py", "from meshreg.config import names", "gcjob uses the standard library only"),
    ("gcjob/run.py", "from meshreg.errors import ConfigError", "gcjob uses the standard library only"),
    # The retention model is shipped to the gc Job with it: it may import nothing of meshreg either.
    ("retention.py", "from meshreg.config import names", "the retention model imports nothing of meshreg"),
    ("retention.py", "def _late():\n    from meshreg.gcjob import retention", "the retention model imports nothing"),
    # The parts in layers: nothing reaches up (the cluster plumbing into doctor, status into an operation, ...).
    ("cluster/apply.py", "from meshreg.doctor import checks", "meshreg's parts import only the parts below them"),
    ("status/judge.py", "def _late():\n    from meshreg.operations import up", "meshreg's parts import only"),
    ("config/model.py", "from meshreg.render import labels", "meshreg's parts import only the parts below them"),
    ("verify/plan.py", "from meshreg.doctor import checks", "meshreg's parts import only the parts below them"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, broken):
    shutil.copytree(ROOT / "meshreg", tmp_path / "meshreg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "meshreg" / module
    target.write_text(target.read_text() + f"\n\n{line}\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    verdicts = [line for line in result.stdout.splitlines() if line.endswith((" KEPT", " BROKEN"))]
    assert [v for v in verdicts if v.startswith(broken)] and all(v.endswith("BROKEN") for v in verdicts
                                                                 if v.startswith(broken)), result.stdout


def test_the_code_shipped_to_the_gc_job_imports_the_standard_library_and_itself_only():
    """What the gc Job runs (meshreg/__init__.py, meshreg/retention.py, meshreg/gcjob) needs a bare Python image:
    every import names a standard library module, a sibling, or meshreg.retention."""
    import ast

    from meshreg.render.gc import MODULES

    for module in MODULES:
        tree = ast.parse((ROOT / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names or name == "meshreg.retention", (module, name)
