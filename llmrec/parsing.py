"""LLM text → candidate ids: titles matched against the candidate set only, and counts of what failed.

Model text is never trusted: every entry the model writes is matched against the titles of *this user's*
candidates (nothing outside the set can come back), and the parse records how many entries it could not read
(`invalid`: a title outside the set, the user's own history echoed back, chatter), how many named a candidate
already named (`duplicates`), and whether anything at all was read (`parsed`).

Entries. Lines with a list marker (`1.`, `1)`, `[1]`, `[1.`, `-`, `*`, `•`, `A.`) are the entries when there are any;
otherwise every non-empty line is one (lines ending with ':' are headers, skipped); a single line of free text
is scanned for candidate titles in the order they occur. `numbered_pairs` output (NIR step 3,
`1. <watched> - <candidate>`) splits each entry at ` - ` (or –, —, ->, =>) and reads the candidate from the
rightmost segment; a left segment that is exactly a candidate counts too, after it (it should name a watched
item, never a candidate).

Matching one entry against the candidates (`TitleMatcher.match`), first rule that gives one answer wins:
1. exact after normalisation (case, accents, punctuation, `&`/and, a trailing `, The` moved to the front),
   with the year kept — so `Hamlet (1990)` and `Hamlet (1996)` stay apart;
2. exact with the year `(1995)` dropped and a leading the/a/an dropped, when that names one candidate;
3. the entry contains candidate titles (whole words): the longest one (`3. Heat - a heist thriller`);
4. partial title: the entry is a whole-word part of exactly one candidate title (`Star Trek IV`), at least
   two words or five letters;
5. fuzzy: difflib similarity ≥ `cutoff` (0.8) to one candidate, clearly ahead (margin 0.05) of the next.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

OutputFormat = Literal["ranking", "numbered_pairs", "free"]

_YEAR = re.compile(r"\s*\((?:19|20)\d\d\)\s*$")
# ", The" style trailing articles (MovieLens: "Usual Suspects, The (1995)"; also French/Italian/German ones)
_TRAILING_ARTICLE = re.compile(r"^(.*?),\s*(the|a|an|le|la|les|l'|il|el|das|der|die)\s*$")
_LEADING_ARTICLE = re.compile(r"^(the|a|an)\s+")
_MARKER = re.compile(
    r"^\s*(?:[\[(]?\s*\d{1,3}\s*[.):\]]\s*|[-*•·]\s+|[A-Z][.)]\s+|\(?[a-z]\)\s+)(?P<rest>.*\S)\s*$"
)
# a new entry inside a line: `], [2.` or `, 2. ` / `; 2) ` (a number after punctuation, then a marker)
_INLINE_ENTRY = re.compile(r"(?<=\])\s*[,;]?\s*(?=\[\s*\d{1,3}\s*[.):\]])|(?<=[,;.])\s+(?=\d{1,2}[.)]\s)")
_PAIR_SEP = re.compile(r"\s+(?:-{1,2}|–|—|->|=>|→)\s+")
_QUOTES = str.maketrans({c: " " for c in "\"“”‘’«»`*_"})


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def _words(text: str) -> str:
    text = text.replace("&", " and ")
    text = re.sub(r"[^0-9a-z]+", " ", text)
    return " ".join(text.split())


def normalise_title(title: str, keep_year: bool = False) -> str:
    """Lower-case words of a title: accents folded, punctuation dropped, `X, The` → `the X`; without
    `keep_year`, a trailing `(1995)` and a leading the/a/an are dropped as well."""
    t = _fold(title).translate(_QUOTES).strip()
    year = ""
    m = _YEAR.search(t)
    if m:
        year, t = m.group(0).strip(), t[: m.start()]
    m = _TRAILING_ARTICLE.match(t.strip())
    if m:
        t = f"{m.group(2)} {m.group(1)}"
    t = _words(t)
    if keep_year:
        return f"{t} {_words(year)}".strip()
    return _LEADING_ARTICLE.sub("", t)


def display_title(title: str) -> str:
    """A catalogue title as people write it: `Usual Suspects, The (1995)` → `The Usual Suspects (1995)`
    (MovieLens stores leading articles at the end); anything else unchanged."""
    t = str(title).strip()
    m = _YEAR.search(t)
    year = m.group(0).strip() if m else ""
    body = t[: m.start()] if m else t
    a = re.match(r"^(.*\S),\s*(The|A|An|Le|La|Les|L'|Il|El|Das|Der|Die)$", body)
    if not a:
        return t
    art = a.group(2)
    return f"{art}{'' if art.endswith(chr(39)) else ' '}{a.group(1)}" + (f" {year}" if year else "")


class TitleMatcher:
    """Matches free text to one of a fixed list of candidate titles (module doc: the rules, in order).

    Built once per candidate list; `match(text)` returns the candidate index or None, and `how` names the
    rule that matched ("exact", "exact_no_year", "contains", "partial", "fuzzy").
    """

    def __init__(self, titles: Sequence[str], cutoff: float = 0.8, margin: float = 0.05) -> None:
        self.titles = [str(t) for t in titles]
        self.cutoff = cutoff
        self.margin = margin
        self.full: dict[str, int] = {}
        self.short: dict[str, list[int]] = {}
        for i, t in enumerate(self.titles):
            self.full.setdefault(normalise_title(t, keep_year=True), i)
            self.short.setdefault(normalise_title(t), []).append(i)
        self.keys = [normalise_title(t) for t in self.titles]
        # longest first, so "star wars return of the jedi" wins over "star wars" inside the same entry
        self._by_length = sorted(
            [(k, i) for i, k in enumerate(self.keys) if k], key=lambda x: (-len(x[0]), x[1])
        )

    def match(self, text: str) -> tuple[int | None, str]:
        full = normalise_title(text, keep_year=True)
        short = normalise_title(text)
        if len(short.replace(" ", "")) < 2:
            return None, "empty"
        if full in self.full:
            return self.full[full], "exact"
        if len(self.short.get(short, [])) == 1:
            return self.short[short][0], "exact_no_year"
        padded = f" {short} "
        for key, i in self._by_length:
            if f" {key} " in padded and len(self.short[key]) == 1:  # a title two candidates share is ambiguous
                return i, "contains"
        if len(short.split()) >= 2 or len(short) >= 5:
            hits = {i for i, k in enumerate(self.keys) if f" {short} " in f" {k} "}
            if len(hits) == 1:
                return hits.pop(), "partial"
        ratios = sorted(
            ((difflib.SequenceMatcher(None, short, k).ratio(), i) for i, k in enumerate(self.keys) if k),
            reverse=True,
        )
        if ratios and ratios[0][0] >= self.cutoff:
            if len(ratios) == 1 or ratios[0][0] - ratios[1][0] >= self.margin:
                return ratios[0][1], "fuzzy"
        return None, "none"

    def mentions(self, text: str) -> list[int]:
        """Candidates named anywhere in free text, in order of first occurrence (whole words, longest first,
        non-overlapping)."""
        padded = f" {normalise_title(text)} "
        taken = [False] * len(padded)
        found: list[tuple[int, int]] = []
        for key, i in self._by_length:
            if len(self.short[key]) > 1:
                continue
            needle = f" {key} "
            start = padded.find(needle)
            while start >= 0:
                span = range(start + 1, start + len(needle) - 1)
                if not any(taken[p] for p in span):
                    for p in span:
                        taken[p] = True
                    found.append((start, i))
                    break
                start = padded.find(needle, start + 1)
        return [i for _, i in sorted(found)]


@dataclass
class ParsedList:
    """Candidates read from one model output, in the order the model named them.

    order: candidate indices (into the list given to the parser), each at most once, first mention first.
    entries: items the model wrote (list entries, or title mentions in free text); invalid: entries that name
    no candidate; duplicates: entries naming a candidate already in `order`; how: which rule matched each.
    """

    order: list[int] = field(default_factory=list)
    entries: int = 0
    invalid: int = 0
    duplicates: int = 0
    mode: str = "empty"  # "list" | "lines" | "free" | "empty"
    how: Counter = field(default_factory=Counter)

    @property
    def parsed(self) -> bool:
        """At least one candidate could be read."""
        return bool(self.order)


def split_entries(text: str) -> tuple[list[str], str]:
    """(entries, mode): list-marked lines if any, else non-empty lines (headers ending ':' skipped), else [].
    Several entries on one line (`[1. x], [2. y]` or `1. x, 2. y`) are split first."""
    lines = []
    for ln in (text or "").splitlines():
        lines.extend(p for p in _INLINE_ENTRY.split(ln) if p.strip())
    marked = [m.group("rest") for m in (_MARKER.match(ln) for ln in lines) if m]
    if marked:
        return marked, "list"
    lines = [ln.strip() for ln in lines if not ln.strip().endswith(":")]
    if len(lines) > 1:
        return lines, "lines"
    return [], "free" if lines else "empty"


def parse_ranking(
    text: str,
    titles: Sequence[str] | TitleMatcher,
    fmt: OutputFormat = "ranking",
) -> ParsedList:
    """Read an ordered list of candidates from model text (see the module doc). Never raises on bad text."""
    matcher = titles if isinstance(titles, TitleMatcher) else TitleMatcher(titles)
    out = ParsedList()
    entries, out.mode = split_entries(text)
    if fmt == "free" or out.mode == "free":
        out.mode = "free" if out.mode != "empty" else "empty"
        for i in matcher.mentions(text or ""):
            out.entries += 1
            out.order.append(i)
            out.how["mention"] += 1
        return out
    seen: set[int] = set()
    for entry in entries:
        out.entries += 1
        found = _match_entry(matcher, entry, fmt)
        if not found:
            out.invalid += 1
            continue
        new = [(i, how) for i, how in found if i not in seen]
        if not new:
            out.duplicates += 1
        for i, how in new:
            out.how[how] += 1
            seen.add(i)
            out.order.append(i)
    return out


def _match_entry(matcher: TitleMatcher, entry: str, fmt: OutputFormat) -> list[tuple[int, str]]:
    """The candidates one entry names: one, or for a pair the right side then any left side that is exactly a
    candidate (the left should name a watched item, which is never a candidate: a model that writes a
    candidate there has named it too; partial and fuzzy matches of the left side do not count)."""
    if fmt == "numbered_pairs":
        segments = _PAIR_SEP.split(entry)
        if len(segments) > 1:
            found = []
            idx, how = matcher.match(segments[-1])
            if idx is not None:
                found.append((idx, how))
            for seg in segments[:-1]:
                j, how_j = matcher.match(seg)
                if j is not None and how_j.startswith("exact") and j != idx:
                    found.append((j, how_j))
            return found
    idx, how = matcher.match(entry)
    return [] if idx is None else [(idx, how)]
