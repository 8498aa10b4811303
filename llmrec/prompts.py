"""Prompt templates as data: load `prompts/**.prompt` files, check their variables, render chat messages.

A prompt file is YAML front matter plus role sections (format: `prompts/README.md`):

    ---
    name: rank/verbalizer          # = the path under prompts/ without `.vN.prompt`
    version: 1                     # = N in the file name; a published version never changes, add vN+1
    description: one line
    variables:                     # exactly the {placeholders} of the body (checked at load)
      history: {type: items, format: numbered, truncate: oldest, doc: "..."}
      item_kind: {type: text, default: movies, doc: "..."}
    expected_output: {format: letter, description: "..."}
    source: where the wording comes from
    ---
    ## system
    ...
    ## user
    ... {history} ... {item_kind} ...

Rendering goes through langchain-core (`ChatPromptTemplate`, f-string placeholders, `{{` for a literal brace)
into OpenAI-style messages `[{"role": ..., "content": ...}]`, which every backend accepts. List variables
(`type: items`) are formatted here (numbered, lettered A/B/C…, comma-separated, one per line, bullets). One
list per template may be `truncate: oldest`: when a token budget is given, its oldest entries are dropped until
the rendered prompt fits, counted with the model's own tokenizer (`backend.count_tokens`).

Where the files are found: `$LLMREC_PROMPTS_DIR` if set, else the copy packaged in the installed wheel
(`llmrec/_prompts`, see setup.py), else `prompts/` of the source checkout.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from llmrec.errors import ConfigError, UnknownNameError

SUFFIX = ".prompt"
_FILE_RE = re.compile(r"^(?P<stem>.+)\.v(?P<version>[1-9][0-9]*)\.prompt$")
_ROLE_RE = re.compile(r"^## (system|user|assistant)[ \t]*$", re.MULTILINE)

VARIABLE_TYPES = ("text", "items", "number")
ITEM_FORMATS = ("numbered", "lettered", "comma", "lines", "bullets")
OUTPUT_FORMATS = (
    "text",  # free text (an explanation, a summary of preferences)
    "item",  # one item title
    "ranking",  # candidate titles or labels, most likely first
    "letter",  # one candidate label (A, B, C, …)
    "yes_no",  # "Yes" or "No"
    "rating",  # a number on the stated scale
    "numbered_list",  # "1. …" lines
    "numbered_pairs",  # "1. x - y" lines (NIR step 3)
)
_FRONT_KEYS = {"name", "version", "description", "variables", "expected_output", "source"}
_VAR_KEYS = {"type", "format", "truncate", "default", "doc"}
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def letters(n: int) -> list[str]:
    """Candidate labels A, B, C, … for a verbalizer prompt (at most 26)."""
    if not 0 <= n <= len(LETTERS):
        raise ConfigError(f"a lettered list holds at most {len(LETTERS)} entries, got {n}")
    return list(LETTERS[:n])


def format_items(items: Sequence[Any], fmt: str) -> str:
    """Format a list for a prompt: numbered `1. x`, lettered `A. x`, comma `x, y`, lines, bullets `- x`."""
    items = [str(x) for x in items]
    if fmt == "numbered":
        return "\n".join(f"{i}. {x}" for i, x in enumerate(items, 1))
    if fmt == "lettered":
        return "\n".join(f"{c}. {x}" for c, x in zip(letters(len(items)), items))
    if fmt == "comma":
        return ", ".join(items)
    if fmt == "lines":
        return "\n".join(items)
    if fmt == "bullets":
        return "\n".join(f"- {x}" for x in items)
    raise ConfigError(f"unknown list format {fmt!r}; known: {', '.join(ITEM_FORMATS)}")


@dataclass(frozen=True)
class Variable:
    """One declared template variable. `truncate: oldest` marks the list cut to fit a token budget."""

    name: str
    type: str = "text"
    format: str | None = None
    truncate: str | None = None
    default: Any = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass
class RenderedPrompt:
    """A rendered prompt: chat `messages` plus what rendering did (for logs and ranker reports).

    n_tokens is set when a token counter was given; history_kept/history_dropped count the entries of the
    truncatable list (0/0 for templates without one).
    """

    messages: list[dict[str, str]]
    template: str
    version: int
    n_tokens: int | None = None
    history_kept: int = 0
    history_dropped: int = 0

    @property
    def text(self) -> str:
        """All message contents joined (for display; backends take `messages`)."""
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.messages)


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded prompt file. Render with `render(values, count_tokens=..., budget=...)`."""

    name: str
    version: int
    description: str
    variables: dict[str, Variable]
    messages: tuple[tuple[str, str], ...]  # (role, f-string template)
    expected_output: dict[str, str]
    source: str
    path: Path
    _chat: Any = field(default=None, repr=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def truncatable(self) -> str | None:
        for v in self.variables.values():
            if v.truncate:
                return v.name
        return None

    def placeholders(self) -> set[str]:
        return set(self._chat.input_variables)

    def _values(self, values: Mapping[str, Any], cut: int = 0) -> dict[str, str]:
        unknown = sorted(set(values) - set(self.variables))
        if unknown:
            raise ConfigError(
                f"prompt {self.id}: unknown variable {unknown[0]!r}; variables: {', '.join(sorted(self.variables))}"
            )
        out: dict[str, str] = {}
        for name, var in self.variables.items():
            if name in values and values[name] is not None:
                v = values[name]
            elif var.default is not None:
                v = var.default
            else:
                raise ConfigError(f"prompt {self.id}: missing variable {name!r} ({var.doc or var.type})")
            if var.type == "items" and not isinstance(v, str):
                v = list(v)
                if name == self.truncatable and cut:
                    v = v[cut:]
                v = format_items(v, var.format or "lines")
            out[name] = str(v)
        return out

    def _messages(self, values: dict[str, str]) -> list[dict[str, str]]:
        from langchain_core.messages import convert_to_openai_messages

        msgs = self._chat.format_messages(**values)
        return [{"role": m["role"], "content": m["content"]} for m in convert_to_openai_messages(msgs)]

    def render(
        self,
        values: Mapping[str, Any],
        *,
        count_tokens: Callable[[list[dict[str, str]]], int] | None = None,
        budget: int | None = None,
    ) -> RenderedPrompt:
        """Fill the template. With `budget` (tokens) and `count_tokens` (the backend's), drop the oldest entries
        of the truncatable list until the prompt fits; raise ConfigError if it cannot fit even without them."""
        if budget is not None and count_tokens is None:
            raise ConfigError(f"prompt {self.id}: a token budget needs count_tokens (backend.count_tokens)")
        hist = self.truncatable
        hist_val = values.get(hist) if hist else None
        n_hist = len(hist_val) if hist_val is not None and not isinstance(hist_val, str) else 0

        def build(cut: int) -> list[dict[str, str]]:
            return self._messages(self._values(values, cut))

        msgs = build(0)
        n_tokens = count_tokens(msgs) if count_tokens is not None else None
        cut = 0
        if budget is not None and n_tokens is not None and n_tokens > budget:
            # Fewest dropped entries that fit: the count is monotone in the cut, so bisect over cut in [1, n_hist].
            lo, hi = 1, n_hist
            best: tuple[int, list[dict[str, str]], int] | None = None
            while lo <= hi:
                mid = (lo + hi) // 2
                m = build(mid)
                n = count_tokens(m)  # type: ignore[misc]
                if n <= budget:
                    best, hi = (mid, m, n), mid - 1
                else:
                    lo = mid + 1
            if best is None:
                raise ConfigError(
                    f"prompt {self.id}: {count_tokens(build(n_hist)) if n_hist else n_tokens} tokens even with "  # type: ignore[misc]
                    f"no history, over the budget of {budget}; shorten the candidates or raise the budget"
                )
            cut, msgs, n_tokens = best
        return RenderedPrompt(
            messages=msgs,
            template=self.name,
            version=self.version,
            n_tokens=n_tokens,
            history_kept=n_hist - cut,
            history_dropped=cut,
        )


# ---- finding and loading files --------------------------------------------------------------------------
def prompts_root() -> Path:
    """`$LLMREC_PROMPTS_DIR`, else the copy inside the installed package, else `prompts/` of the checkout."""
    env = os.environ.get("LLMREC_PROMPTS_DIR")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise ConfigError(f"LLMREC_PROMPTS_DIR={env}: not a folder")
        return root
    here = Path(__file__).resolve().parent
    for root in (here / "_prompts", here.parent / "prompts"):
        if (root / "README.md").is_file() or any(root.rglob(f"*{SUFFIX}")):
            return root
    raise ConfigError(f"no prompt files found (looked in {here / '_prompts'} and {here.parent / 'prompts'})")


def _scan(root: Path) -> dict[str, dict[int, Path]]:
    found: dict[str, dict[int, Path]] = {}
    for p in sorted(root.rglob(f"*{SUFFIX}")):
        m = _FILE_RE.match(p.relative_to(root).as_posix())
        if not m:
            raise ConfigError(f"{p}: prompt files are named <name>.v<N>.prompt")
        found.setdefault(m["stem"], {})[int(m["version"])] = p
    return found


def list_prompts(prefix: str = "", root: Path | None = None) -> list[str]:
    """Template names under `prefix` (e.g. "p5/", "rank/"), sorted."""
    return sorted(n for n in _scan(root or prompts_root()) if n.startswith(prefix))


def versions(name: str, root: Path | None = None) -> list[int]:
    return sorted(_scan(root or prompts_root()).get(name, {}))


def load_prompt(name: str, version: int | None = None, root: Path | None = None) -> PromptTemplate:
    """Load `name` (latest version) or `name@N` / `version=N` (pinned). Unknown names list the known ones."""
    if "@" in name:
        name, _, v = name.partition("@")
        try:
            version = int(v)
        except ValueError:
            raise ConfigError(f"prompt {name}@{v}: the version after @ is a number") from None
    root = (root or prompts_root()).resolve()
    found = _scan(root)
    if name not in found:
        near = [n for n in found if n.startswith(name.split("/")[0] + "/")] or sorted(found)
        raise UnknownNameError(f"unknown prompt {name!r}; known: {', '.join(sorted(near))}")
    if version is None:
        version = max(found[name])
    if version not in found[name]:
        raise UnknownNameError(
            f"prompt {name!r} has no version {version}; versions: {', '.join(map(str, sorted(found[name])))}"
        )
    path = found[name][version]
    return _load_file(path, name, version, path.stat().st_mtime_ns)


@lru_cache(maxsize=256)
def _load_file(path: Path, name: str, version: int, mtime_ns: int) -> PromptTemplate:
    return parse_prompt(path.read_text(encoding="utf-8"), path, name, version)


def parse_prompt(
    text: str, path: Path, name: str | None = None, version: int | None = None
) -> PromptTemplate:
    """Parse and validate one prompt file (front matter, role sections, variables == placeholders)."""
    from langchain_core.prompts import ChatPromptTemplate

    if not text.startswith("---\n"):
        raise ConfigError(f"{path}: a prompt file starts with '---' and YAML front matter")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ConfigError(f"{path}: front matter is not closed by a '---' line")
    try:
        meta = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML front matter ({getattr(e, 'problem', e)})") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: front matter must be a mapping")
    unknown = sorted(set(meta) - _FRONT_KEYS)
    missing = sorted(_FRONT_KEYS - set(meta))
    if unknown:
        raise ConfigError(
            f"{path}: unknown front matter key {unknown[0]!r}; valid: {', '.join(sorted(_FRONT_KEYS))}"
        )
    if missing:
        raise ConfigError(f"{path}: front matter lacks {', '.join(missing)}")
    if name is not None and meta["name"] != name:
        raise ConfigError(f"{path}: name {meta['name']!r} does not match the file path ({name!r})")
    if not isinstance(meta["version"], int) or (version is not None and meta["version"] != version):
        raise ConfigError(f"{path}: version {meta['version']!r} does not match the file name (v{version})")

    variables = _parse_variables(meta["variables"], path)
    out = meta["expected_output"]
    if (
        not isinstance(out, dict)
        or out.get("format") not in OUTPUT_FORMATS
        or set(out) - {"format", "description"}
    ):
        raise ConfigError(
            f"{path}: expected_output is {{format, description}} with format one of {', '.join(OUTPUT_FORMATS)}"
        )

    body = text[end + 5 :]
    parts = _ROLE_RE.split(body)
    if parts[0].strip():
        raise ConfigError(f"{path}: text before the first '## system|user|assistant' line")
    messages = tuple((parts[i], parts[i + 1].strip("\n")) for i in range(1, len(parts), 2))
    if not messages:
        raise ConfigError(f"{path}: no '## user' section")
    if messages[-1][0] != "user":
        raise ConfigError(f"{path}: the last section must be '## user' (the model answers it)")
    try:
        chat = ChatPromptTemplate.from_messages(
            [("human" if r == "user" else "ai" if r == "assistant" else r, t) for r, t in messages],
            template_format="f-string",
        )
    except (ValueError, KeyError) as e:
        raise ConfigError(
            f"{path}: bad placeholder syntax ({e}); write {{{{ and }}}} for literal braces"
        ) from None
    placeholders = set(chat.input_variables)
    if placeholders != set(variables):
        extra = sorted(placeholders - set(variables))
        unused = sorted(set(variables) - placeholders)
        raise ConfigError(
            f"{path}: declared variables differ from the placeholders"
            + (f"; undeclared: {', '.join(extra)}" if extra else "")
            + (f"; declared but unused: {', '.join(unused)}" if unused else "")
        )
    return PromptTemplate(
        name=str(meta["name"]),
        version=int(meta["version"]),
        description=str(meta["description"]),
        variables=variables,
        messages=messages,
        expected_output={k: str(v) for k, v in out.items()},
        source=str(meta["source"]),
        path=path,
        _chat=chat,
    )


def _parse_variables(raw: Any, path: Path) -> dict[str, Variable]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: variables is a mapping name -> {{type, format, truncate, default, doc}}")
    out: dict[str, Variable] = {}
    for name, spec in raw.items():
        spec = spec or {}
        if not isinstance(spec, dict) or set(spec) - _VAR_KEYS:
            bad = sorted(set(spec) - _VAR_KEYS) if isinstance(spec, dict) else [spec]
            raise ConfigError(
                f"{path}: variable {name!r}: unknown key {bad[0]!r}; valid: {', '.join(sorted(_VAR_KEYS))}"
            )
        v = Variable(name=str(name), **spec)
        if v.type not in VARIABLE_TYPES:
            raise ConfigError(f"{path}: variable {name!r}: type is one of {', '.join(VARIABLE_TYPES)}")
        if v.type == "items" and v.format not in ITEM_FORMATS:
            raise ConfigError(f"{path}: variable {name!r}: format is one of {', '.join(ITEM_FORMATS)}")
        if v.truncate not in (None, "oldest") or (v.truncate and v.type != "items"):
            raise ConfigError(f"{path}: variable {name!r}: only an items list can have truncate: oldest")
        out[v.name] = v
    if sum(1 for v in out.values() if v.truncate) > 1:
        raise ConfigError(f"{path}: at most one variable may be truncated")
    return out


def render(
    template: str | PromptTemplate,
    values: Mapping[str, Any],
    *,
    count_tokens: Callable[[list[dict[str, str]]], int] | None = None,
    budget: int | None = None,
) -> RenderedPrompt:
    """Load (by name, `name@N` to pin) and render a template; see `PromptTemplate.render`."""
    tpl = load_prompt(template) if isinstance(template, str) else template
    return tpl.render(values, count_tokens=count_tokens, budget=budget)
