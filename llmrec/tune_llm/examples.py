"""Training and validation examples for LLM tuning: P5-style task families rendered from the prompt files.

A family is a set of prompt templates that ask the same question; one template of each is held out of training
(the unseen-prompt test, as P5 does) and the others are drawn at random per example. Every example is a chat
prompt and the answer the model should write:

- `direct` (P5 family 5, LlamaRec's verbalizer): the history and C lettered candidates → the target's letter.
  Candidates: the retriever's top C-1 items for that history (fitted on the training part; default item-kNN),
  or C-1 uniform unseen items (`negatives: uniform`), or either, drawn per example (`negatives: mixed`: a
  ranker that will meet both — a retriever's shortlist in a two-stage, uniform negatives in `sampled:N`), with
  the target inserted at a seeded random position.
- `sequential` (P5 family 2): the history → the next title (`next_k > 1`: the next k titles, one per line, so
  one example trains k targets; the title-likelihood ranker reads the first).
- `rating` (P5 family 1): the history with its star ratings → the star rating of the next item (data sets with
  ratings only).
- `yesno` (TALLRec): the history and one item → "Yes" for the real next item, "No" for a negative drawn as for
  `direct` (half the examples each).

Targets come from the training part of each sequence only (leave-one-out: everything but the validation and
test items): for every user, `per_user` seeded positions p ≥ 1 of the training part per family; the history is
the (up to `history_len`) items before p. The validation examples put each sampled user's validation item in
the target's place with the whole training part as history, rendered with each family's first template; they
pick the checkpoint. A user's validation and test items never appear in a training prompt — not as history, not
as an answer, not as a negative — and the test item appears in no example at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from llmrec.errors import ConfigError
from llmrec.parsing import display_title
from llmrec.prompts import letters, load_prompt, render
from llmrec.types import Dataset, ScoreBatch, Split, pad_left


@dataclass(frozen=True)
class Family:
    """A task family: its templates (the first is the one rankers use by default) and the held-out one."""

    templates: tuple[str, ...]
    holdout: str
    answer: str  # what the answer is, for docs and reports


FAMILIES: dict[str, Family] = {
    "direct": Family(("rank/verbalizer", "p5/direct/pick-letter", "p5/direct/choose-letter"),
                     "p5/direct/choose-letter", "the target's letter among C candidates"),
    "sequential": Family(("rank/next_title", "p5/sequential/history-next", "p5/sequential/recommend-next",
                          "p5/sequential/wonder-next"), "p5/sequential/wonder-next", "the next title(s)"),
    "rating": Family(("p5/rating/star-rating", "p5/rating/predict-score"), "p5/rating/predict-score",
                     "the star rating 1-5"),
    "yesno": Family(("rank/pointwise", "p5/yesno/would-enjoy"), "p5/yesno/would-enjoy", "Yes or No"),
}


@dataclass
class Example:
    """One rendered example. `user` / `pos`: whose sequence and which flat position of `split.items` is the
    target (the first of `next_k` for sequential); `target_col`: the target's candidate index (direct)."""

    family: str
    template: str
    messages: list[dict[str, str]]
    answer: str
    user: int
    pos: int
    target_col: int = -1
    n_candidates: int = 0


@dataclass
class ExampleSpec:
    """What to render (the tuning config's relevant fields)."""

    tasks: Sequence[str]
    per_user: dict[str, int]
    holdout: dict[str, str]
    history_len: int = 10
    candidates: int = 20
    negatives: str = "retriever"
    next_k: int = 1
    item_kind: str = "item"
    action: str = "interacted with"
    extra: dict[str, Any] = field(default_factory=dict)

    def seen_templates(self, family: str) -> list[str]:
        held = self.holdout.get(family, FAMILIES[family].holdout)
        return [t for t in FAMILIES[family].templates if t != held]


def check_spec(spec: ExampleSpec, dataset: Dataset) -> list[str]:
    """Validate the families and templates; returns the families that will be rendered (rating is dropped, with
    a note, when the data set has no ratings)."""
    notes: list[str] = []
    tasks = []
    for t in spec.tasks:
        if t not in FAMILIES:
            raise ConfigError(f"task {t!r}: unknown; choose from {', '.join(FAMILIES)}")
        held = spec.holdout.get(t, FAMILIES[t].holdout)
        if held not in FAMILIES[t].templates:
            raise ConfigError(f"holdout.{t}: {held!r} is not a {t} template ({', '.join(FAMILIES[t].templates)})")
        if t == "rating" and dataset.interactions["rating"].isna().all():
            notes.append(f"{dataset.name} has no ratings: the rating task is skipped")
            continue
        tasks.append(t)
    if not 2 <= spec.candidates <= 26:
        raise ConfigError(f"candidates must be in 2..26 (single-letter labels), got {spec.candidates}")
    if spec.negatives not in ("retriever", "uniform", "mixed"):
        raise ConfigError(f"negatives must be 'retriever', 'uniform' or 'mixed', got {spec.negatives!r}")
    if spec.history_len < 1 or spec.next_k < 1:
        raise ConfigError("history_len and next_k must be ≥ 1")
    for t in tasks:
        for name in FAMILIES[t].templates:
            load_prompt(name)  # every template file exists
    spec.extra["notes"] = notes
    return tasks


class Renderer:
    """Renders one template with the values it declares (the families' templates take different subsets)."""

    def __init__(self, spec: ExampleSpec, titles: list[str]) -> None:
        self.spec = spec
        self.titles = titles  # natural titles, index = item id (0 = "")

    def __call__(self, template: str, **values: Any) -> list[dict[str, str]]:
        declared = load_prompt(template).variables
        base = {"item_kind": self.spec.item_kind, "action": self.spec.action, **values}
        return render(template, {k: v for k, v in base.items() if k in declared}).messages


def training_bounds(split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, start, end) of each user's training part (leave-one-out) with at least 2 items: a target and
    one item of history before it."""
    users = np.arange(1, split.n_users + 1, dtype=np.int64)
    s, e = split.history_bounds(users, "train")
    keep = (e - s) >= 2
    return users[keep], s[keep], e[keep]


def held_out_items(split: Split, users: np.ndarray) -> np.ndarray:
    """(U, 2) each user's validation and test items (0 where the sequence is too short to have one)."""
    end = split.indptr[users + 1]
    lengths = end - split.indptr[users]
    valid = np.where(lengths >= 3, split.items[np.maximum(end - 2, 0)], 0)
    test = np.where(lengths >= 2, split.items[np.maximum(end - 1, 0)], 0)
    return np.stack([valid, test], axis=1)


def retrieve(scorer: Any, split: Split, users: np.ndarray, histories: np.ndarray, exclude: np.ndarray, k: int,
             batch: int = 512) -> np.ndarray:
    """(B, k) the retriever's top-k items for each history (B, T), never an item of `exclude` (B, X) — the
    history, the target, the user's held-out items — nor padding."""
    out = np.zeros((len(users), k), dtype=np.int64)
    for s in range(0, len(users), batch):
        sl = slice(s, s + batch)
        with torch.inference_mode():
            scores = scorer.score(ScoreBatch(torch.from_numpy(users[sl]), torch.from_numpy(histories[sl]), None,
                                             "valid"))
        scores = torch.as_tensor(scores, dtype=torch.float32).clone()  # (b, N+1)
        scores[:, 0] = -torch.inf
        scores.scatter_(1, torch.from_numpy(np.concatenate([histories[sl], exclude[sl]], axis=1)), -torch.inf)
        out[sl] = scores.topk(k, dim=1).indices.numpy()
    return out


def uniform_negatives(rng: np.random.Generator, n_items: int, banned: list[set[int]], k: int) -> np.ndarray:
    """(B, k) distinct items drawn uniformly from 1..N outside each row's banned set."""
    out = np.zeros((len(banned), k), dtype=np.int64)
    for b, ban in enumerate(banned):
        if n_items - len(ban) < k:
            raise ConfigError(f"a user has interacted with all but {n_items - len(ban)} items; need {k} negatives")
        got: list[int] = []
        while len(got) < k:
            for i in rng.integers(1, n_items + 1, size=2 * k).tolist():
                if i not in ban and i not in got:
                    got.append(i)
                    if len(got) == k:
                        break
        out[b] = got
    return out


def build_examples(
    dataset: Dataset,
    split: Split,
    spec: ExampleSpec,
    retriever: Any | None,
    rng: np.random.Generator,
    phase: str = "train",
    valid_users: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[Example]:
    """Render the examples of every family in `spec.tasks` (see the module doc). phase "train": seeded
    positions of the training parts; "valid": the validation item of `valid_users` seeded users."""
    tasks = check_spec(spec, dataset)
    titles = [""] + [display_title(dataset.items.title(i)) for i in range(1, dataset.n_items + 1)]
    ratings = dataset.interactions["rating"].to_numpy(dtype=np.float64)
    if len(ratings) != len(split.items):
        raise ConfigError("interactions and split disagree in length; rebuild the split from this data set")
    r = Renderer(spec, titles)
    users, starts, ends = training_bounds(split)
    held = held_out_items(split, users)
    # one row per example to build: (family, user row, target position)
    jobs: list[tuple[str, int, int]] = []
    if phase == "train":
        for t in tasks:
            n = spec.per_user.get(t, 1)
            for row, (s, e) in enumerate(zip(starts, ends)):
                avail = e - (s + 1)
                take = rng.choice(avail, size=min(n, avail), replace=False) + s + 1
                jobs += [(t, row, int(p)) for p in take]
    else:
        has_valid = held[:, 0] > 0
        rows = np.nonzero(has_valid)[0]
        if valid_users and valid_users < len(rows):
            rows = np.sort(rng.choice(rows, size=valid_users, replace=False))
        jobs = [(t, int(row), int(ends[row])) for t in tasks for row in rows]  # the validation item sits at end
    if not jobs:
        return []
    hist_T = spec.history_len
    row_idx = np.array([j[1] for j in jobs])
    pos = np.array([j[2] for j in jobs])
    u = users[row_idx]
    s = starts[row_idx]
    hist = pad_left(split.items, np.maximum(s, pos - hist_T), pos, hist_T)  # (J, T) shown in the prompt
    target = split.items[pos]
    neg_need = [j for j, (t, _, _) in enumerate(jobs) if t in ("direct", "yesno")]
    negatives = np.zeros((len(jobs), spec.candidates - 1), dtype=np.int64)
    if neg_need:
        idx = np.array(neg_need)
        use_ret = np.full(len(idx), spec.negatives == "retriever")
        if spec.negatives == "mixed":
            use_ret = rng.random(len(idx)) < 0.5
        ret, uni = idx[use_ret], idx[~use_ret]
        if len(ret):
            if retriever is None:
                raise ConfigError(f"negatives: {spec.negatives} needs a retriever scorer")
            full_hist = pad_left(split.items, s[ret], pos[ret])  # the whole prefix for the retriever
            exclude = np.concatenate([target[ret, None], held[row_idx[ret]]], axis=1)
            if progress:
                progress(f"retrieving {spec.candidates - 1} candidates for {len(ret)} examples")
            negatives[ret] = retrieve(retriever, split, u[ret], full_hist, exclude, spec.candidates - 1)
        if len(uni):
            banned = [set(split.items[split.indptr[uu]: split.indptr[uu + 1]].tolist()) for uu in u[uni]]
            negatives[uni] = uniform_negatives(rng, split.n_items, banned, spec.candidates - 1)
    seen = {t: spec.seen_templates(t) for t in tasks}
    out: list[Example] = []
    for j, (t, row, p) in enumerate(jobs):
        template = seen[t][0] if phase != "train" else seen[t][int(rng.integers(len(seen[t])))]
        history = [titles[i] for i in hist[j] if i > 0]
        if t == "direct":
            cands = negatives[j].tolist()
            col = int(rng.integers(spec.candidates))
            cands.insert(col, int(target[j]))
            msgs = r(template, history=history, candidates=[titles[i] for i in cands])
            out.append(Example(t, template, msgs, letters(spec.candidates)[col], int(u[j]), p, col, spec.candidates))
        elif t == "sequential":
            end = int(ends[row]) if phase == "train" else p + 1
            k = min(spec.next_k, end - p) if phase == "train" else 1
            answer = "\n".join(titles[i] for i in split.items[p : p + k])
            out.append(Example(t, template, r(template, history=history), answer, int(u[j]), p))
        elif t == "rating":
            lo = max(int(s[j]), p - hist_T)
            rated = [f"{titles[split.items[q]]}: {int(ratings[q])} stars" for q in range(lo, p) if ratings[q] == ratings[q]]
            value = ratings[p]
            if value != value:  # no rating on this interaction
                continue
            msgs = r(template, history=history, rated_history=rated or ["(none)"], item=titles[target[j]])
            out.append(Example(t, template, msgs, str(int(round(value))), int(u[j]), p))
        else:  # yesno: half positives, half negatives (a negative from the same pool as direct's)
            positive = bool(rng.integers(2))
            item = int(target[j]) if positive else int(negatives[j][int(rng.integers(spec.candidates - 1))])
            msgs = r(template, history=history, candidate=titles[item])
            out.append(Example(t, template, msgs, "Yes" if positive else "No", int(u[j]), p))
    return out


def examples_summary(examples: Sequence[Example]) -> dict[str, Any]:
    """Counts per family and template, for the manifest and the progress log."""
    fam: dict[str, int] = {}
    tpl: dict[str, int] = {}
    for ex in examples:
        fam[ex.family] = fam.get(ex.family, 0) + 1
        tpl[ex.template] = tpl.get(ex.template, 0) + 1
    return {"examples": len(examples), "by_family": fam, "by_template": tpl}
