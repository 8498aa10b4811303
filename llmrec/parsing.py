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
2. exact with the year `(1995)` dropped and a leading the/a/an dropped, when that names one title;
3. the entry contains candidate titles (whole words): the longest one (`3. Heat - a heist thriller`);
4. partial title: the entry is a whole-word part of exactly one candidate title (`Star Trek IV`), at least
   two words or five letters;
5. fuzzy: difflib similarity ≥ `cutoff` (0.8) to one candidate, clearly ahead (margin 0.05) of the next.
A title of one letter (`M (1931)`) is matched by rules 1-2 only (inside other text, "m" is too common).

The user's history. Given the titles the user interacted with (`history=`), an entry that is exactly one of
them (and not a candidate) is invalid (`how` "history", counted in `echoed`) before rules 2-5 could read a
candidate inside it (`Star Wars: Return of the Jedi` watched, `Star Wars` a candidate); in rules 3-5 a
candidate title inside a history title the entry writes is not read, and a history title competes in rules
4-5 (an entry that is part of, or close to, a history title is ambiguous).

Candidates with the same title (two `Hamlet (1996)`, or two catalogue items of one name): each mention of the
title names the next one not yet named, so writing it twice names both.

The NIR paper's own hit rule, `named_anywhere(answer, title)`: the target's title, as shown in the prompt,
occurs anywhere in the answer (the authors' `elem[1] in predictions`) — HR only, no rank.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence
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

    Built once per candidate list (and the user's history titles, when known); `match(text, taken)` returns
    the candidate index or None, and `how` names the rule that decided ("exact", "exact_no_year", "contains",
    "partial", "fuzzy"; for None: "empty", "history", "none").

    Candidates that are the same title (the same normalised title with its year) form one group: a match names
    the group, and the candidate returned is the group's first one not in `taken` (the first one if all are),
    so a title written twice names both candidates that share it.
    """

    def __init__(
        self, titles: Sequence[str], cutoff: float = 0.8, margin: float = 0.05, history: Sequence[str] = ()
    ) -> None:
        self.titles = [str(t) for t in titles]
        self.cutoff = cutoff
        self.margin = margin
        self.keys = [normalise_title(t) for t in self.titles]  # (C,) short key of each candidate
        self.members: list[list[int]] = []  # group -> candidate indices with that exact title, in order
        self.full: dict[str, int] = {}  # normalised title with year -> group
        for i, t in enumerate(self.titles):
            g = self.full.setdefault(normalise_title(t, keep_year=True), len(self.members))
            if g == len(self.members):
                self.members.append([])
            self.members[g].append(i)
        self.group_keys = [self.keys[m[0]] for m in self.members]  # short key of each group
        self.short: dict[str, list[int]] = {}  # short key -> groups (more than one: ambiguous without the year)
        for g, k in enumerate(self.group_keys):
            self.short.setdefault(k, []).append(g)
        # the user's own titles that are not candidates: an entry naming one is invalid, never a candidate
        hist = [str(h) for h in history]
        self.history_full = {normalise_title(h, keep_year=True) for h in hist} - set(self.full)
        self.history_short = {k for k in (normalise_title(h) for h in hist) if k} - set(self.short)
        self.history_keys = sorted(self.history_short)
        # contains / mentions: longest first, so "star wars return of the jedi" wins over "star wars" inside the
        # same text; a title of one letter ("M") is matched only when the entry is exactly that title
        self._by_length = sorted(
            [(k, g) for g, k in enumerate(self.group_keys) if _letters(k) >= 2], key=lambda x: (-len(x[0]), x[1])
        )
        self._history_spans = sorted([k for k in self.history_keys if _letters(k) >= 2], key=lambda k: -len(k))

    def _pick(self, group: int, taken: Collection[int]) -> int:
        return next((i for i in self.members[group] if i not in taken), self.members[group][0])

    def match(self, text: str, taken: Collection[int] = ()) -> tuple[int | None, str]:
        full = normalise_title(text, keep_year=True)
        short = normalise_title(text)
        if not _letters(short):
            return None, "empty"
        if full in self.full:
            return self._pick(self.full[full], taken), "exact"
        if full in self.history_full:
            return None, "history"
        if len(self.short.get(short, [])) == 1:
            return self._pick(self.short[short][0], taken), "exact_no_year"
        if short in self.history_short:
            return None, "history"
        if _letters(short) < 2:
            return None, "empty"
        padded = f" {short} "
        echoed = _covered(padded, self._history_spans)  # characters inside a history title written in the entry
        for key, g in self._by_length:
            if len(self.short[key]) == 1 and _occurs_outside(padded, f" {key} ", echoed):
                return self._pick(g, taken), "contains"  # (a title two candidates share is ambiguous)
        if len(short.split()) >= 2 or len(short) >= 5:
            hits = {g for g, k in enumerate(self.group_keys) if f" {short} " in f" {k} "}
            in_history = any(f" {short} " in f" {k} " for k in self.history_keys)
            if len(hits) == 1 and not in_history:
                return self._pick(hits.pop(), taken), "partial"
        g = self._fuzzy(short)
        if g is not None:
            return self._pick(g, taken), "fuzzy"
        return None, "none"

    def _fuzzy(self, short: str) -> int | None:
        """The group whose title is ≥ cutoff similar and clearly (margin) ahead of every other title, history
        titles included (None when the best is a history title)."""
        sm = difflib.SequenceMatcher(None, "", short)
        scored: list[tuple[float, int]] = []
        for g, k in enumerate(self.group_keys):
            if k:
                sm.set_seq1(k)
                scored.append((sm.ratio(), g))
        for k in self.history_keys:
            sm.set_seq1(k)
            if sm.real_quick_ratio() >= self.cutoff - self.margin and sm.quick_ratio() >= self.cutoff - self.margin:
                scored.append((sm.ratio(), -1))  # -1: a history title
        scored.sort(key=lambda x: x[0], reverse=True)
        if not scored or scored[0][0] < self.cutoff or scored[0][1] < 0:
            return None
        if len(scored) > 1 and scored[0][0] - scored[1][0] < self.margin:
            return None
        return scored[0][1]

    def mentions(self, text: str) -> list[int]:
        """Candidates named anywhere in free text, in order of occurrence (whole words, longest first,
        non-overlapping; a title shared by k candidates names each of them once, in order, over its first k
        occurrences; text inside a history title the text names is not read as a candidate)."""
        padded = f" {normalise_title(text)} "
        taken = [False] * len(padded)
        found: list[tuple[int, int]] = []  # (position, group)
        spans = [(k, g) for k, g in self._by_length if len(self.short[k]) == 1]
        spans += [(k, -1) for k in self._history_spans]
        spans.sort(key=lambda x: -len(x[0]))  # stable: a candidate before a history title of the same length
        for key, g in spans:
            needle = f" {key} "
            limit = len(self.members[g]) if g >= 0 else len(padded)
            start, hits = padded.find(needle), 0
            while start >= 0 and hits < limit:
                span = range(start + 1, start + len(needle) - 1)
                if not any(taken[p] for p in span):
                    for p in span:
                        taken[p] = True
                    if g >= 0:
                        found.append((start, g))
                    hits += 1
                start = padded.find(needle, start + 1)
        out: list[int] = []
        for _, g in sorted(found):
            out.append(self._pick(g, out))
        return out


def _letters(key: str) -> int:
    return len(key.replace(" ", ""))


def _covered(padded: str, keys: Sequence[str]) -> list[bool]:
    """Per character of `padded`: inside a whole-word occurrence of one of `keys`."""
    cov = [False] * len(padded)
    for key in keys:
        needle = f" {key} "
        start = padded.find(needle)
        while start >= 0:
            for p in range(start + 1, start + len(needle) - 1):
                cov[p] = True
            start = padded.find(needle, start + 1)
    return cov


def _occurs_outside(padded: str, needle: str, covered: list[bool]) -> bool:
    """`needle` occurs in `padded` at least once not wholly inside a covered (history title) span."""
    start = padded.find(needle)
    while start >= 0:
        if not all(covered[start + 1 : start + len(needle) - 1]):
            return True
        start = padded.find(needle, start + 1)
    return False


def named_anywhere(text: str, title: str) -> bool:
    """The NIR paper's hit rule (Wang & Lim 2023; `three_stage_0_NIR.py`: `if elem[1] in predictions`): the
    target's title, exactly as given to the model, occurs anywhere in the generated answer — on either side of
    a `watched - candidate` pair, at any position of the list, even as part of a longer title. A hit-rate rule
    (HR, no rank): it credits any mention, so it is looser than reading the ranked candidates."""
    return bool(title) and str(title) in (text or "")


@dataclass
class ParsedList:
    """Candidates read from one model output, in the order the model named them.

    order: candidate indices (into the list given to the parser), each at most once, first mention first.
    entries: items the model wrote (list entries, or title mentions in free text); invalid: entries that name
    no candidate; echoed: those of them that are the user's own history titles; duplicates: entries naming a
    candidate already in `order`; how: which rule matched each.
    """

    order: list[int] = field(default_factory=list)
    entries: int = 0
    invalid: int = 0
    echoed: int = 0
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
    history: Sequence[str] = (),
) -> ParsedList:
    """Read an ordered list of candidates from model text (see the module doc). Never raises on bad text.
    `history`: the user's own titles (ignored when `titles` is already a TitleMatcher: give them to it)."""
    matcher = titles if isinstance(titles, TitleMatcher) else TitleMatcher(titles, history=history)
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
        found, why = _match_entry(matcher, entry, fmt, seen)
        if not found:
            out.invalid += 1
            out.echoed += why == "history"
            continue
        new = [(i, how) for i, how in found if i not in seen]
        if not new:
            out.duplicates += 1
        for i, how in new:
            out.how[how] += 1
            seen.add(i)
            out.order.append(i)
    return out


def _match_entry(
    matcher: TitleMatcher, entry: str, fmt: OutputFormat, taken: set[int]
) -> tuple[list[tuple[int, str]], str]:
    """(the candidates one entry names, the rule that decided the main side): one, or for a pair the right side
    then any left side that is exactly a candidate (the left should name a watched item, which is never a
    candidate: a model that writes a candidate there has named it too; partial and fuzzy matches of the left
    side do not count). `taken`: candidates already named (a title shared by two candidates names the next)."""
    if fmt == "numbered_pairs":
        segments = _PAIR_SEP.split(entry)
        if len(segments) > 1:
            found = []
            idx, how = matcher.match(segments[-1], taken)
            if idx is not None:
                found.append((idx, how))
            for seg in segments[:-1]:
                j, how_j = matcher.match(seg, taken | {i for i, _ in found})
                if j is not None and how_j.startswith("exact") and j != idx:
                    found.append((j, how_j))
            return found, how
    idx, how = matcher.match(entry, taken)
    return ([] if idx is None else [(idx, how)]), how
