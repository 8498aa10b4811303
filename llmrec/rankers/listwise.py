"""Generative list ranking (LLMRank, Hou et al. ECIR 2024): the model writes the candidates in order.

One prompt per (user, candidate order) — `rank/listwise_sequential` (default), `rank/listwise_recency` or
`rank/listwise_incontext` — all prompts of a batch sent to the backend in one `generate` call. The answer is
parsed against the user's candidates (`llmrec.parsing.parse_ranking`, which also knows the user's history
titles, so an echoed watched title is invalid rather than read as a candidate it contains): the j-th distinct
candidate named scores C - j; candidates never named score by the `unnamed` rule (`llmrec.rankers.base`):
tied at 0 at the bottom (`bottom`, the default) or in a seeded random order after the named ones (`fill`).
With `bootstrap` K > 1 the K rankings' scores are averaged (a Borda count, i.e. a mean rank).
No retry and no fallback: an unreadable answer leaves every candidate unnamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from llmrec.llm.base import Completion, GenerationParams, LLMBackend
from llmrec.parsing import OutputFormat, ParsedList, TitleMatcher, parse_ranking
from llmrec.prompts import RenderedPrompt, load_prompt, render
from llmrec.rankers.base import (
    GenerativeConfig,
    RankResult,
    RankStats,
    UserContext,
    candidate_orders,
    history_budget,
    positional_scores,
    user_rng,
)

PROMPTS = {
    "sequential": "rank/listwise_sequential",
    "recency": "rank/listwise_recency",
    "incontext": "rank/listwise_incontext",
}


@dataclass
class ListwiseConfig(GenerativeConfig):
    """Listwise ranker options (plus the shared `RankerConfig` ones and `unnamed`)."""

    prompt: Literal["sequential", "recency", "incontext"] = "sequential"  # LLMRank's three prompt styles
    # answer length: tokens_per_candidate · C + 16 when max_tokens is 0 — about enough to write every candidate
    # once (ML-100K titles average ~7 tokens, plus the number and newline); a model that loops is cut there
    max_tokens: int = 0
    tokens_per_candidate: int = 10
    temperature: float = 0.0  # greedy: deterministic; > 0 samples with `seed`

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {', '.join(PROMPTS)}, got {self.prompt!r}")

    def answer_tokens(self, n_candidates: int) -> int:
        return self.max_tokens or self.tokens_per_candidate * n_candidates + 16


def generation_stats(c: Completion, parsed: ParsedList) -> RankStats:
    """What one generated answer cost and how well it parsed."""
    return RankStats(
        requests=1,
        cached=int(c.cached),
        prompt_tokens=c.prompt_tokens,
        completion_tokens=c.completion_tokens,
        outputs=1,
        parsed=int(parsed.parsed),
        named=parsed.entries,
        invalid=parsed.invalid,
        duplicates=parsed.duplicates,
    )


def render_prompt(backend: LLMBackend, template: str, values: dict[str, Any], max_new: int, margin: int,
                  drop_undeclared: bool = False) -> RenderedPrompt:
    """Render with the history cut (oldest first) to fit the backend's window. `drop_undeclared`: values the
    template does not declare are left out (rankers whose template is an option fill a superset)."""
    if drop_undeclared:
        declared = load_prompt(template).variables
        values = {k: v for k, v in values.items() if k in declared}
    budget = history_budget(backend, max_new, margin)
    counter = backend.count_tokens if budget is not None else None
    return render(template, values, count_tokens=counter, budget=budget)


class ListwiseRanker:
    """LLMRank-style listwise ranking by generation; see the module doc."""

    name = "listwise"
    output_format: OutputFormat = "ranking"

    def __init__(self, backend: LLMBackend, cfg: ListwiseConfig | None = None) -> None:
        self.backend = backend
        self.cfg = cfg or ListwiseConfig()

    def values(self, user: UserContext, titles: Sequence[str]) -> dict[str, Any]:
        """Template values for one user and one presentation order of the candidates."""
        hist = self.cfg.recent(user.history)
        v: dict[str, Any] = {
            "item_kind": self.cfg.item_kind,
            "action": self.cfg.action,
            "candidates": list(titles),
            "n_candidates": len(titles),
        }
        if self.cfg.prompt == "incontext":
            # the demonstration: the user's own most recent item as the answer to the earlier history
            v.update(history=hist[:-1], recent=hist[-1] if hist else "")
        elif self.cfg.prompt == "recency":
            v.update(history=hist, recent=hist[-1] if hist else "")
        else:
            v.update(history=hist)
        return v

    def prompts(self, user: UserContext, titles: Sequence[str], orders: list[np.ndarray]) -> list[RenderedPrompt]:
        max_new = self.cfg.answer_tokens(len(titles))
        return [
            render_prompt(self.backend, PROMPTS[self.cfg.prompt], self.values(user, [titles[i] for i in o]),
                          max_new, self.cfg.budget_margin)
            for o in orders
        ]

    def rank(self, users: Sequence[UserContext], candidates: Sequence[Sequence[str]]) -> list[RankResult]:
        plans = []  # per user: (rng, orders, rendered prompts)
        flat: list[Any] = []
        for user, titles in zip(users, candidates):
            rng = user_rng(self.cfg.seed, user.key)
            orders = candidate_orders(rng, len(titles), self.cfg.bootstrap)
            rendered = self.prompts(user, titles, orders)
            plans.append((rng, orders, rendered))
            flat.extend(r.messages for r in rendered)
        answers = self._generate(flat, candidates)
        out, pos = [], 0
        for user, (rng, orders, rendered), titles in zip(users, plans, candidates):
            outs = answers[pos : pos + len(orders)]
            pos += len(orders)
            out.append(self._score(rng, orders, rendered, outs, titles, user.history))
        return out

    def _generate(self, prompts: list[Any], candidates: Sequence[Sequence[str]]) -> list[Completion]:
        if not prompts:
            return []
        longest = max((len(c) for c in candidates), default=1)
        params = GenerationParams(
            max_tokens=self.cfg.answer_tokens(longest), temperature=self.cfg.temperature, seed=self.cfg.seed
        )
        return self.backend.generate(prompts, params)

    def _score(
        self,
        rng: np.random.Generator,
        orders: list[np.ndarray],
        rendered: list[RenderedPrompt],
        outs: list[Completion],
        titles: Sequence[str],
        history: Sequence[str] = (),
    ) -> RankResult:
        n = len(titles)
        stats = RankStats(candidates=n)
        per_order = []
        named: set[int] = set()
        rest = self.cfg.rest_order(rng, n)  # fill: one seeded order per user; bottom: None (tied at 0)
        for order, c in zip(orders, outs):
            shown = [titles[i] for i in order]
            parsed = parse_ranking(c.text, TitleMatcher(shown, history=history), self.output_format)
            stats += generation_stats(c, parsed)
            ids = [int(order[j]) for j in parsed.order]
            named.update(ids)
            per_order.append(positional_scores(ids, n, rest))
        stats.unnamed = n - len(named)
        scores = self.cfg.average(per_order, rng) if n else np.zeros(0)
        return RankResult(scores, stats, [r.messages for r in rendered], [c.text for c in outs])
