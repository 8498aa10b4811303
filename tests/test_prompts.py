"""Prompt templates as data: every file loads and renders for the fixture user, declared variables equal the
placeholders, every published version matches its golden rendering, history truncation, and the wheel ships
the files.

Regenerate goldens (only when adding a NEW version file): LLMREC_UPDATE_GOLDEN=1 pytest tests/test_prompts.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from llmrec.errors import ConfigError, UnknownNameError
from llmrec.prompts import (
    ITEM_FORMATS,
    OUTPUT_FORMATS,
    format_items,
    letters,
    list_prompts,
    load_prompt,
    parse_prompt,
    prompts_root,
    render,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "llm" / "golden"
USER = {
    k: v
    for k, v in json.loads((Path(__file__).parent / "llm" / "fixture_user.json").read_text()).items()
    if k[0] != "_"
}
ALL = list_prompts()
FAMILIES = {
    "p5/sequential",
    "p5/direct",
    "p5/rating",
    "p5/explanation",
    "p5/summarisation",
    "nir",
    "rank",
}


def values_for(tpl) -> dict:
    return {k: USER[k] for k in tpl.variables if k in USER}


def test_checkout_root_and_families():
    assert prompts_root() == ROOT / "prompts"
    families = {n.rsplit("/", 1)[0] for n in ALL}
    assert FAMILIES <= families
    for fam in ["p5/sequential", "p5/direct", "p5/rating", "p5/explanation", "p5/summarisation"]:
        assert len(list_prompts(fam + "/")) >= 2, f"{fam} needs several templates"
    for name in [
        "nir/step1_preferences",
        "nir/step2_representative",
        "nir/step3_recommend",
        "rank/listwise_sequential",
        "rank/listwise_recency",
        "rank/listwise_incontext",
        "rank/verbalizer",
        "rank/pointwise",
    ]:
        assert name in ALL


@pytest.mark.parametrize("name", ALL)
def test_template_renders_for_fixture_user(name):
    tpl = load_prompt(name)
    assert tpl.name == name and tpl.version >= 1
    assert tpl.source and tpl.description
    assert tpl.expected_output["format"] in OUTPUT_FORMATS
    # declared variables == placeholders (also enforced at load), and the fixture user covers every one
    assert tpl.placeholders() == set(tpl.variables)
    missing = [v for v, spec in tpl.variables.items() if spec.required and v not in USER]
    assert not missing, f"fixture_user.json lacks {missing}"
    r = render(tpl, values_for(tpl))
    assert r.messages[-1]["role"] == "user"
    assert all(m["role"] in ("system", "user", "assistant") for m in r.messages)
    text = "\n".join(m["content"] for m in r.messages)
    assert "{" not in text and "}" not in text, "an unfilled placeholder"
    if "history" in tpl.variables:
        assert USER["history"][-1] in text and r.history_kept == len(USER["history"])
    # no prompt prose may sit in code: the variables are filled in, nothing else is added
    for field_text in (m["content"] for m in r.messages):
        assert field_text.strip() == field_text


@pytest.mark.parametrize("name", ALL)
def test_golden_rendering(name):
    """A published version never changes: its rendering for the fixture user is frozen here."""
    tpl = load_prompt(name)
    got = render(tpl, values_for(tpl)).text + "\n"
    path = GOLDEN / f"{tpl.name.replace('/', '__')}@v{tpl.version}.txt"
    if os.environ.get("LLMREC_UPDATE_GOLDEN") == "1" and not path.exists():
        path.write_text(got, encoding="utf-8")
    assert path.exists(), f"no golden rendering for {tpl.id}; run with LLMREC_UPDATE_GOLDEN=1 once"
    assert got == path.read_text(encoding="utf-8"), f"{tpl.id} changed: publish a new version instead"


def test_every_family_has_a_golden():
    names = {p.name.split("@")[0].replace("__", "/").rsplit("/", 1)[0] for p in GOLDEN.glob("*.txt")}
    assert FAMILIES <= names


def test_verbalizer_letters_and_formats():
    r = render("rank/verbalizer", {"history": ["a", "b"], "candidates": ["x", "y", "z"]})
    assert "A. x\nB. y\nC. z" in r.messages[-1]["content"]
    assert letters(3) == ["A", "B", "C"]
    with pytest.raises(ConfigError):
        letters(27)
    for fmt in ITEM_FORMATS:
        assert "b" in format_items(["a", "b"], fmt)
    assert format_items(["a", "b"], "comma") == "a, b"
    assert format_items(["a", "b"], "numbered") == "1. a\n2. b"


def test_version_pinning_and_unknown_names():
    assert load_prompt("rank/verbalizer@1").version == 1
    assert load_prompt("rank/verbalizer", version=1).id == "rank/verbalizer@1"
    with pytest.raises(UnknownNameError, match="known: rank/"):
        load_prompt("rank/nope")
    with pytest.raises(UnknownNameError, match="versions: 1"):
        load_prompt("rank/verbalizer@99")


def test_missing_and_unknown_variables():
    with pytest.raises(ConfigError, match="missing variable 'candidates'"):
        render("rank/verbalizer", {"history": ["a"]})
    with pytest.raises(ConfigError, match="unknown variable 'colour'"):
        render("rank/verbalizer", {"history": ["a"], "candidates": ["b"], "colour": "red"})


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / f"{name}.v1.prompt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


GOOD = """---
name: t/x
version: 1
description: d
variables:
  history: {type: items, format: lines, truncate: oldest, doc: h}
  q: {type: text, doc: q}
expected_output: {format: text, description: d}
source: s
---
## system
Sys {{literal}}.
## user
{history}
Q: {q}
"""


def test_parse_checks_variables_against_placeholders(tmp_path):
    tpl = parse_prompt(GOOD, _write(tmp_path, "t/x", GOOD), "t/x", 1)
    assert tpl.render({"history": ["a"], "q": "?"}).messages[0]["content"] == "Sys {literal}."
    undeclared = GOOD.replace("Q: {q}", "Q: {q} {extra}")
    with pytest.raises(ConfigError, match="undeclared: extra"):
        parse_prompt(undeclared, tmp_path / "a", "t/x", 1)
    unused = GOOD.replace("Q: {q}", "Q:")
    with pytest.raises(ConfigError, match="declared but unused: q"):
        parse_prompt(unused, tmp_path / "b", "t/x", 1)
    with pytest.raises(ConfigError, match="unknown front matter key 'colour'"):
        parse_prompt(GOOD.replace("source: s", "source: s\ncolour: red"), tmp_path / "c", "t/x", 1)
    with pytest.raises(ConfigError, match="does not match the file path"):
        parse_prompt(GOOD, tmp_path / "d", "t/y", 1)
    with pytest.raises(ConfigError, match="version"):
        parse_prompt(GOOD, tmp_path / "e", "t/x", 2)
    with pytest.raises(ConfigError, match="last section must be '## user'"):
        parse_prompt(GOOD + "## assistant\nok\n", tmp_path / "f", "t/x", 1)
    with pytest.raises(ConfigError, match="text before the first"):
        parse_prompt(GOOD.replace("## system\n", "hello\n## system\n"), tmp_path / "g", "t/x", 1)


def test_prompts_dir_override(tmp_path, monkeypatch):
    _write(tmp_path, "t/x", GOOD)
    monkeypatch.setenv("LLMREC_PROMPTS_DIR", str(tmp_path))
    assert list_prompts() == ["t/x"]


# ---- history truncation to a token budget ------------------------------------------------------------------
def words(messages) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return sum(len(m["content"].split()) for m in messages)


def test_truncation_drops_oldest_first():
    history = [f"title{i}" for i in range(100)]
    vals = {"history": history, "candidates": ["x", "y"]}
    full = render("rank/verbalizer", vals, count_tokens=words)
    assert full.n_tokens is not None and full.history_dropped == 0
    budget = full.n_tokens - 50
    cut = render("rank/verbalizer", vals, count_tokens=words, budget=budget)
    assert cut.n_tokens <= budget
    assert cut.history_dropped > 0 and cut.history_kept + cut.history_dropped == 100
    text = cut.messages[-1]["content"]
    assert "title99" in text and "title0\n" not in text  # the most recent items survive
    # minimal cut: keeping one more (older) item would not fit
    more = render(
        "rank/verbalizer",
        {"history": history[cut.history_dropped - 1 :], "candidates": ["x", "y"]},
        count_tokens=words,
    )
    assert more.n_tokens > budget
    # numbering restarts at 1 for the kept items (the model sees a clean list)
    assert text.count("1. title") >= 1


def test_truncation_impossible_budget_is_a_clear_error():
    with pytest.raises(ConfigError, match="even with no history"):
        render(
            "rank/verbalizer", {"history": ["a"] * 5, "candidates": ["x"] * 5}, count_tokens=words, budget=3
        )
    with pytest.raises(ConfigError, match="needs count_tokens"):
        render("rank/verbalizer", {"history": ["a"], "candidates": ["x"]}, budget=100)


# ---- the wheel ships the templates ---------------------------------------------------------------------------
@pytest.mark.slow
def test_wheel_contains_prompts_and_finds_them(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md"]:
        if (ROOT / f).exists():
            shutil.copy(ROOT / f, src / f)
    shutil.copytree(ROOT / "llmrec", src / "llmrec", ignore=shutil.ignore_patterns("__pycache__", "_prompts"))
    shutil.copytree(ROOT / "prompts", src / "prompts")
    out = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        check=True,
        cwd=tmp_path,
    )
    wheel = next(out.glob("llmrec-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("llmrec/_prompts/") for n in names if n.startswith("llmrec/_prompts/")}
    expected = {
        p.relative_to(ROOT / "prompts").as_posix() for p in (ROOT / "prompts").rglob("*") if p.is_file()
    }
    assert expected <= shipped
    # installed (unpacked) without the checkout: templates are found inside the package
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = "from llmrec.prompts import prompts_root, load_prompt; print(prompts_root()); print(load_prompt('rank/verbalizer').id)"
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("LLMREC_PROMPTS_DIR", None)
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, check=True
    )
    root, tid = r.stdout.split()
    assert Path(root) == target / "llmrec" / "_prompts" and tid == "rank/verbalizer@1"
