"""Yes/No ranking (TALLRec, Bao et al. RecSys 2023): each candidate judged on its own, "will the user like it?".

One prompt per (user, candidate) — the history and that candidate (`rank/pointwise`, or any template with a
`history` and a `candidate` answered Yes or No: `template`) — and the next-token log-probabilities of the two
answers read in one forward pass (`backend.score_labels(prompts, ["Yes", "No"])`, no generation). A candidate
scores log p(Yes) − log p(No): the log-odds of a yes, which does not depend on how much probability the model
puts on other tokens. Nothing is generated, so there is nothing to parse. The candidates never share a prompt,
so their order cannot matter and bootstrapping is exact at no cost (the K orders are the same prompts: computed
once). Every prompt of a batch goes to the backend in one call.

Cost: C prompts per user (the verbalizer needs one); the history part is the same in all of them, which a server
with prefix caching (vLLM) computes once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llmrec.llm.base import LLMBackend
from llmrec.rankers.base import RankerConfig, RankResult, RankStats, UserContext, check_template
from llmrec.rankers.listwise import render_prompt

TEMPLATE = "rank/pointwise"
ANSWERS = ("Yes", "No")


@dataclass
class YesNoConfig(RankerConfig):
    """Yes/No options (plus the shared `RankerConfig` ones)."""

    template: str = TEMPLATE  # any template with `history` and `candidate`, answered Yes or No

    def __post_init__(self) -> None:
        super().__post_init__()
        check_template(self.template, ("history", "candidate"), "yes_no")


class YesNoRanker:
    """Scores each candidate by log p(Yes) − log p(No) after a yes/no question about it; see the module doc."""

    name = "yesno"

    def __init__(self, backend: LLMBackend, cfg: YesNoConfig | None = None) -> None:
        self.backend = backend
        self.cfg = cfg or YesNoConfig()

    def prompt(self, history: Sequence[str], title: str) -> Any:
        values = {"item_kind": self.cfg.item_kind, "action": self.cfg.action, "history": list(history),
                  "candidate": title}
        return render_prompt(self.backend, self.cfg.template, values, 1, self.cfg.budget_margin,
                             drop_undeclared=True).messages

    def rank(self, users: Sequence[UserContext], candidates: Sequence[Sequence[str]]) -> list[RankResult]:
        prompts: list[Any] = []
        owner: list[tuple[int, int]] = []  # (user index, candidate index) of each prompt
        for ui, (user, titles) in enumerate(zip(users, candidates)):
            history = self.cfg.recent(user.history)
            for ci, title in enumerate(titles):
                prompts.append(self.prompt(history, title))
                owner.append((ui, ci))
        answers = self.backend.score_labels(prompts, list(ANSWERS)) if prompts else []
        scores = [np.zeros(len(t)) for t in candidates]
        stats = [RankStats() for _ in candidates]
        per_user: list[list[Any]] = [[] for _ in candidates]
        for (ui, ci), prompt, a in zip(owner, prompts, answers):
            scores[ui][ci] = a.logprobs[0] - a.logprobs[1]  # log-odds of "Yes"
            stats[ui] += RankStats(requests=1, cached=int(a.cached), prompt_tokens=a.prompt_tokens)
            per_user[ui].append(prompt)
        return [RankResult(s, st, p) for s, st, p in zip(scores, stats, per_user)]
