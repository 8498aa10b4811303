"""Build hook only (metadata lives in pyproject.toml): ship the top-level `prompts/` folder inside the wheel.

`prompts/` stays the single source of truth at the top of the checkout (ARCHITECTURE.md); a wheel carries a copy
as `llmrec/_prompts/`, which `llmrec.prompts.prompts_root()` finds first. Editable installs read `prompts/`
from the checkout directly, so nothing is copied for them. The sdist includes `prompts/` (MANIFEST.in).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROMPTS = Path(__file__).resolve().parent / "prompts"


class BuildPyWithPrompts(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not PROMPTS.is_dir():
            raise SystemExit(f"setup.py: {PROMPTS} is missing; the wheel would ship without prompt templates")
        dst = Path(self.build_lib) / "llmrec" / "_prompts"
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(PROMPTS, dst, ignore=shutil.ignore_patterns("*~", ".*"))


setup(cmdclass={"build_py": BuildPyWithPrompts})
