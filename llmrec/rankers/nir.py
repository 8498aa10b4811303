"""NIR three-step zero-shot next-item recommendation (Wang & Lim 2023, arXiv:2304.03153).

Candidates come from a candidate protocol (`nir` = the 170 published sets; `nir-uf:N` / `nir-if:N` = NIR's user
or item filtering, `llmrec.data.candidates`): an LLM cannot rank a whole catalogue. Then three prompts, each
one a chat that carries the earlier answers (`prompts/nir/step*.prompt`, modelled on the published GPT-3.5
prompts), every step sent for the whole batch of users in one `generate` call:
1. `nir/step1_preferences`: what features matter to me? — a short preference summary over the last 8 titles;
2. `nir/step2_representative`: select the most featured watched items according to those preferences;
3. `nir/step3_recommend`: recommend 10 candidates similar to the selected ones, as `1. <watched> - <candidate>`.
The step-3 answer is parsed against the candidates (`numbered_pairs`, the user's history titles known to the
parser: an echoed watched title is invalid, never read as a candidate it contains); named candidates score C - j, the
rest by the `unnamed` rule (`llmrec.rankers.base`: tied at 0 at the bottom by default, or `fill`: a seeded
random order). Bootstrap K > 1 runs the three steps for K candidate orders (the candidate set is in every step's
prompt) and averages the positional scores.

The paper's own metric is a hit when the target's title appears anywhere in the step-3 answer
(`llmrec.parsing.named_anywhere`); `step3_answers(result)` gives those answers of a ranked user.

The step-1 summaries are reusable: `summarise(users, candidates)` runs step 1 only, and `RankResult.extras`
carries `summary` and `selected` for each ranked user. With the response cache on (`make_backend(...,
cache=True)`) a summary is computed once per (history, candidates, model) and shared by every later call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmrec.llm.base import Completion, GenerationParams, LLMBackend
from llmrec.parsing import TitleMatcher, parse_ranking
from llmrec.rankers.base import (
    GenerativeConfig,
    RankResult,
    RankStats,
    UserContext,
    candidate_orders,
    positional_scores,
    user_rng,
)
from llmrec.rankers.listwise import generation_stats, render_prompt

STEPS = ("nir/step1_preferences", "nir/step2_representative", "nir/step3_recommend")


@dataclass
class NIRConfig(GenerativeConfig):
    """NIR options (plus the shared `RankerConfig` ones and `unnamed`). Token caps: the published GPT-3.5
    answers were ~41 / ~57 / ~123 tokens (mean; 90th percentile 50 / 69 / 145) in SmolLM2's tokenizer."""

    history_len: int = 8  # the published prompts show the last 8 watched titles
    n_recommend: int = 10  # step 3: how many candidates to ask for
    step1_tokens: int = 64
    step2_tokens: int = 64
    step3_tokens: int = 160
    temperature: float = 0.0  # greedy (the paper used temperature 0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.step1_tokens, self.step2_tokens, self.step3_tokens, self.n_recommend) < 1:
            raise ValueError("step token caps and n_recommend must be >= 1")


class NIRRanker:
    """NIR's three-step prompting; see the module doc."""

    name = "nir"

    def __init__(self, backend: LLMBackend, cfg: NIRConfig | None = None) -> None:
        self.backend = backend
        self.cfg = cfg or NIRConfig()
        self.summaries: dict[int, str] = {}  # user key -> the last step-1 summary computed (order 0)

    def _values(self, user: UserContext, titles: Sequence[str]) -> dict[str, Any]:
        return {
            "item_kind": self.cfg.item_kind,
            "action": self.cfg.action,
            "candidates": list(titles),
            "history": self.cfg.recent(user.history),
        }

    def _params(self, max_tokens: int) -> GenerationParams:
        return GenerationParams(max_tokens=max_tokens, temperature=self.cfg.temperature, seed=self.cfg.seed)

    def _step(self, step: int, values: list[dict[str, Any]], max_tokens: int) -> tuple[list[Any], list[Completion]]:
        prompts = [
            render_prompt(self.backend, STEPS[step], v, max_tokens, self.cfg.budget_margin).messages
            for v in values
        ]
        return prompts, (self.backend.generate(prompts, self._params(max_tokens)) if prompts else [])

    def summarise(self, users: Sequence[UserContext], candidates: Sequence[Sequence[str]]) -> list[str]:
        """Step 1 only: each user's preference summary (candidates in the given order), batched."""
        values = [self._values(u, c) for u, c in zip(users, candidates)]
        _, outs = self._step(0, values, self.cfg.step1_tokens)
        texts = [o.text.strip() for o in outs]
        self.summaries.update({u.key: t for u, t in zip(users, texts)})
        return texts

    def rank(self, users: Sequence[UserContext], candidates: Sequence[Sequence[str]]) -> list[RankResult]:
        jobs = []  # one per (user, order): (user index, order)
        rngs = []
        for ui, (user, titles) in enumerate(zip(users, candidates)):
            rng = user_rng(self.cfg.seed, user.key)
            rngs.append(rng)
            for order in candidate_orders(rng, len(titles), self.cfg.bootstrap):
                jobs.append((ui, order))
        values = [self._values(users[ui], [candidates[ui][i] for i in order]) for ui, order in jobs]
        p1, a1 = self._step(0, values, self.cfg.step1_tokens)
        for v, a in zip(values, a1):
            v["preferences"] = a.text.strip()
        p2, a2 = self._step(1, values, self.cfg.step2_tokens)
        for v, a in zip(values, a2):
            v["selected"] = a.text.strip()
            v["n_recommend"] = self.cfg.n_recommend
        p3, a3 = self._step(2, values, self.cfg.step3_tokens)

        results = []
        for ui, (user, titles) in enumerate(zip(users, candidates)):
            n = len(titles)
            rng = rngs[ui]
            rest = self.cfg.rest_order(rng, n)  # fill: one seeded order per user; bottom: None (tied at 0)
            stats = RankStats(candidates=n)
            named: set[int] = set()
            per_order, prompts, outputs = [], [], []
            extras: dict[str, str] = {}
            for j, (uj, order) in enumerate(jobs):
                if uj != ui:
                    continue
                shown = [titles[i] for i in order]
                parsed = parse_ranking(a3[j].text, TitleMatcher(shown, history=user.history), "numbered_pairs")
                stats += generation_stats(a3[j], parsed)
                for a in (a1[j], a2[j]):  # steps 1 and 2 cost tokens but are not parsed
                    stats += RankStats(requests=1, cached=int(a.cached), prompt_tokens=a.prompt_tokens,
                                       completion_tokens=a.completion_tokens)
                ids = [int(order[k]) for k in parsed.order]
                named.update(ids)
                per_order.append(positional_scores(ids, n, rest))
                prompts += [p1[j], p2[j], p3[j]]
                outputs += [a1[j].text, a2[j].text, a3[j].text]
                if not extras:
                    extras = {"summary": a1[j].text.strip(), "selected": a2[j].text.strip()}
            stats.unnamed = n - len(named)
            self.summaries[user.key] = extras.get("summary", "")
            scores = self.cfg.average(per_order, rng) if n else np.zeros(0)
            results.append(RankResult(scores, stats, prompts, outputs, extras))
        return results


def step3_answers(result: RankResult) -> list[str]:
    """The step-3 answers (the recommended list) in a NIR `RankResult`, one per candidate order (given order
    first): `outputs` holds steps 1, 2, 3 for each order in turn."""
    return result.outputs[2::3]
