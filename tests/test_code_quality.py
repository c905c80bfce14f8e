"""The code passes ruff and mypy with the settings in pyproject.toml, mypy is strict where it says so, and no function
of meshreg is above cyclomatic complexity 10 (radon's measure, the one issue 20 set the limit in)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from support.paths import ROOT

BIN = pathlib.Path(sys.executable).parent
# Ruff checks all of these; mypy checks what pyproject.toml [tool.mypy] names (all of meshreg).
CHECKED = ["meshreg", "tests", "benchmarks"]


def run(tool: str, *args: str, cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess[str]:
    executable = BIN / tool
    if not executable.exists():
        pytest.skip(f"{tool} is not installed: pip install -e '.[test]'")
    return subprocess.run([str(executable), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", "--no-cache", *CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_function_of_meshreg_is_above_complexity_10() -> None:
    result = run("radon", "cc", "--min", "C", "--show-complexity", "meshreg")
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


@pytest.mark.parametrize(("module", "source", "error"), [
    ("cli/probe.py", "def f(x):\n    return x\n", "[no-untyped-def]"),  # every part: annotated functions
    ("cli/probe.py", "def f(x: dict) -> dict:\n    return x\n", None),  # outside the pure parts: not strict
    ("render/probe.py", "def f(x: dict) -> dict:\n    return x\n", "[type-arg]"),  # the pure parts: --strict
    ("config/probe.py", "from typing import Any\n\n\ndef f(x: Any) -> int:\n    return x\n", "[no-any-return]"),
    ("policy/probe.py", "def f(x: int) -> bool:\n    return x == 'a'\n", "[comparison-overlap]"),
    ("pki/probe.py", "x = 1  # type: ignore[assignment]\n", "[unused-ignore]"),
])
def test_mypy_is_strict_for_the_pure_parts_only(tmp_path: pathlib.Path, module: str, source: str,
                                                error: str | None) -> None:
    package = tmp_path / "meshreg"
    for directory in (package, (package / module).parent):
        directory.mkdir(exist_ok=True)
        (directory / "__init__.py").touch()
    (package / module).write_text(source)
    result = run("mypy", "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental", f"meshreg/{module}",
                 cwd=tmp_path)
    if error is None:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode == 1 and error in result.stdout, result.stdout + result.stderr
