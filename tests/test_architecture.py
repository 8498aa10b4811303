"""The package's layering holds: `lint-imports` checks the contract declared in pyproject.toml
([tool.importlinter]): each layer of llmrec/ imports only the layers below it, function-local imports included,
so there are no import cycles between subpackages and library code never calls the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_layers_contract():
    pytest.importorskip("importlinter", reason="import-linter is in the dev extra: pip install -e '.[dev]'")
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_library_never_parses_a_command_line():
    """Only llmrec/cli.py and llmrec/commands/ build argparse parsers: everything else is callable code."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "llmrec").rglob("*.py")
                 if "import argparse" in p.read_text(encoding="utf-8")
                 and p.name != "cli.py" and "commands" not in p.parts]
    assert not offenders, offenders
