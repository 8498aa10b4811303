"""Verbalizer ranking (LlamaRec, Yue et al. 2023): one forward pass ranks every candidate of a window.

The candidates are listed with single-token labels A, B, C, … (`rank/verbalizer`, or any template with a
history and lettered candidates answered by a letter: `template`, e.g. a held-out one after LLM tuning); the
next-token
log-probabilities of the labels after the prompt (`backend.score_labels`, no generation) give the whole
ranking at once. Labels are checked to be single tokens by the backend (a BackendError names any that is not).
All prompts of a batch (users × windows × bootstrap orders) go to the backend in one call.

Windows. A list longer than `window` (default 20, as LlamaRec; at most 26 letters) is split into
ceil(C / window) windows of near-equal size, in presentation order. Merge rule: within a window the label
log-probabilities are renormalised over that window's labels (log p(c | window)), and each candidate's score is
its log-lift over a uniform choice in its window, log p(c | window) + log |window|. A lift compares across
windows of different sizes (a candidate the model likes twice as much as an average member of its window
scores log 2 whatever the window), and with bootstrap K > 1 each candidate meets different window-mates.

Bootstrap: scores of the K presentation orders are averaged (a mean of log-lifts, i.e. a geometric mean of
the probability ratios). Each order is a new prompt; the history part before the candidate list is the same,
so a server with prefix caching (vLLM) reuses it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmrec.llm.base import LabelScores, LLMBackend
from llmrec.prompts import letters
from llmrec.rankers.base import (
    RankerConfig,
    RankResult,
    RankStats,
    UserContext,
    candidate_orders,
    check_template,
    user_rng,
)
from llmrec.rankers.listwise import render_prompt

TEMPLATE = "rank/verbalizer"


@dataclass
class VerbalizerConfig(RankerConfig):
    """Verbalizer options (plus the shared `RankerConfig` ones)."""

    window: int = 20  # candidates per prompt (labels A..); LlamaRec ranks 20; at most 26 (letters)
    template: str = TEMPLATE  # any template with `history` and lettered `candidates`, answered by a letter

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.window <= 26:
            raise ValueError(f"window must be in 2..26 (single-letter labels), got {self.window}")
        check_template(self.template, ("history", "candidates"), "letter")


def windows(n: int, size: int) -> list[range]:
    """ceil(n / size) consecutive windows of near-equal size covering 0..n-1 (sizes differ by at most 1)."""
    if n == 0:
        return []
    k = math.ceil(n / size)
    bounds = np.linspace(0, n, k + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


class VerbalizerRanker:
    """LlamaRec-style verbalizer ranking; see the module doc."""

    name = "verbalizer"

    def __init__(self, backend: LLMBackend, cfg: VerbalizerConfig | None = None) -> None:
        self.backend = backend
        self.cfg = cfg or VerbalizerConfig()

    def _prompt(self, user: UserContext, titles: Sequence[str]) -> Any:
        values = {"item_kind": self.cfg.item_kind, "history": self.cfg.recent(user.history),
                  "candidates": list(titles)}
        return render_prompt(self.backend, self.cfg.template, values, 1, self.cfg.budget_margin,
                             drop_undeclared=True).messages

    def rank(self, users: Sequence[UserContext], candidates: Sequence[Sequence[str]]) -> list[RankResult]:
        # every (user, order, window) prompt, grouped by window size (one label set per backend call)
        jobs: list[tuple[int, np.ndarray]] = []  # (user index, candidate indices shown, in label order)
        prompts: list[Any] = []
        for ui, (user, titles) in enumerate(zip(users, candidates)):
            rng = user_rng(self.cfg.seed, user.key)
            for order in candidate_orders(rng, len(titles), self.cfg.bootstrap):
                for w in windows(len(titles), self.cfg.window):
                    shown = order[w.start : w.stop]
                    jobs.append((ui, shown))
                    prompts.append(self._prompt(user, [titles[i] for i in shown]))
        answers: list[LabelScores | None] = [None] * len(jobs)
        for size in sorted({len(s) for _, s in jobs}):
            idx = [j for j, (_, s) in enumerate(jobs) if len(s) == size]
            got = self.backend.score_labels([prompts[j] for j in idx], letters(size))
            for j, a in zip(idx, got):
                answers[j] = a

        sums = [np.zeros(len(c)) for c in candidates]
        counts = [np.zeros(len(c)) for c in candidates]
        stats = [RankStats() for _ in candidates]
        per_user_prompts: list[list[Any]] = [[] for _ in candidates]
        for (ui, shown), prompt, a in zip(jobs, prompts, answers):
            assert a is not None
            lift = np.asarray(a.normalized()) + math.log(len(shown))  # (W,) log-lift over uniform
            sums[ui][shown] += lift
            counts[ui][shown] += 1
            stats[ui] += RankStats(requests=1, cached=int(a.cached), prompt_tokens=a.prompt_tokens)
            per_user_prompts[ui].append(prompt)
        return [
            RankResult(s / np.maximum(c, 1), st, p)
            for s, c, st, p in zip(sums, counts, stats, per_user_prompts)
        ]
