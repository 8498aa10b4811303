"""`llm:RANKER` scorers: a zero-shot LLM ranker (`llmrec.rankers`) behind the Scorer contract.

`llmrec evaluate --scorer llm:nir|listwise|verbalizer|pointwise --llm SPEC --protocol sampled:19|nir|nir-uf:19|…`
Options (`--set options.KEY=VALUE`): the ranker's config fields (e.g. bootstrap=3, history_len=8,
prompt=recency, window=20, norm=sum; see `llmrec.rankers.*Config`) and this scorer's (`LLMScorerConfig`).

The scorer turns a batch into titles — the history (before the held-out item: the batch holds nothing else)
and each user's candidates — hands the whole batch to the ranker (whose backend call covers every prompt of the
batch), and returns (B, C) scores; padding columns score -1e9. It never sees a target: a ScoreBatch has none.
Full ranking is refused: an LLM cannot rank a whole catalogue.

`report()` (merged into the evaluation result): parse rate (generated answers from which a candidate was read),
invalid-item rate (entries naming no candidate), duplicates, prompt and completion tokens (of every request,
cached ones included, so they describe the method), LLM calls made and cache hits, wall time per user, and the
rule that scored the candidates a generative ranker never named: `unnamed_rule` ("bottom": tied at the bottom,
the default; "fill": a seeded random order; "n/a" for rankers that score every candidate, verbalizer and
pointwise) with `unnamed_share`, the share of candidates named in none of their user's answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch

from llmrec.config import from_dict
from llmrec.errors import ConfigError
from llmrec.llm.base import LLMBackend
from llmrec.parsing import display_title
from llmrec.rankers import RANKERS, RankResult, RankStats, UserContext, make_ranker
from llmrec.scorers.base import SCORERS, ScorerContext
from llmrec.types import Dataset, ScoreBatch, Split

PAD_SCORE = -1e9
PROTOCOL_HINT = "use a candidate protocol: --protocol sampled:19, nir, nir-uf:19 or candidates:FILE"


@dataclass
class LLMScorerConfig:
    """Options of the `llm` scorer itself (the rest of `options` go to the ranker's config)."""

    cache: str = "true"  # LLM response cache: true (<cache dir>/llm-responses.sqlite), false, or a SQLite path
    backend: dict[str, Any] = field(default_factory=dict)  # backend options, e.g. {batch_size: 16, num_threads: 1}
    batch_users: int = 32  # users per evaluation batch: all their prompts go to the backend in one call
    titles: Literal["natural", "raw"] = "natural"  # natural: "The Usual Suspects (1995)"; raw: as catalogued

    def __post_init__(self) -> None:
        if self.batch_users < 1:
            raise ValueError(f"batch_users must be >= 1, got {self.batch_users}")

    def cache_arg(self) -> str | bool:
        low = str(self.cache).lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off", "", "none"):
            return False
        return str(self.cache)


SCORER_KEYS = {f.name for f in fields(LLMScorerConfig)}


class LLMScorer:
    """A ranker as a Scorer; see the module doc. `last_results` holds the RankResults of the latest batch
    (prompts, outputs, NIR summaries) for inspection and reuse."""

    def __init__(
        self,
        ranker: str,
        llm: str | None = None,
        options: dict[str, Any] | None = None,
        seed: int = 0,
        backend: LLMBackend | None = None,
    ) -> None:
        self.entry = RANKERS.get(ranker)
        opts = dict(options or {})
        self.cfg = from_dict(LLMScorerConfig, {k: opts.pop(k) for k in list(opts) if k in SCORER_KEYS}, "llm scorer")
        valid = sorted(SCORER_KEYS | {f.name for f in fields(self.entry.config)})
        bad = sorted(set(opts) - set(valid))
        if bad:
            raise ConfigError(f"llm:{ranker}: unknown option {bad[0]!r}; valid options: {', '.join(valid)}")
        self.ranker_name = ranker
        self.ranker_options = {"seed": seed, **opts}
        from_dict(self.entry.config, self.ranker_options, f"llm:{ranker} options")  # fail now, not at batch 1
        self.name = f"llm:{ranker}"
        self.llm = llm
        self.batch_size = self.cfg.batch_users
        self._backend = backend
        self.ranker: Any = None
        self.titles: list[str] = []
        self.n_items = 0
        self.stats = RankStats()
        self.users = 0
        self.wall_s = 0.0
        self.last_results: list[RankResult] = []
        self._usage0: tuple[int, int, dict[str, int]] = (0, 0, {})

    @property
    def backend(self) -> LLMBackend:
        if self._backend is None:
            from llmrec.llm import make_backend

            self._backend = make_backend(self.llm, cache=self.cfg.cache_arg(), **self.cfg.backend)
        return self._backend

    def fit(self, dataset: Dataset, split: Split) -> None:
        """Bind the catalogue's titles and the data set's domain words (options item_kind / action override
        them); nothing is trained."""
        if not dataset.items.has_titles:
            raise ConfigError(
                f"{self.name}: data set {dataset.name!r} has no item titles; LLM rankers read titles "
                f"(an items.csv with a title column)"
            )
        raw = ["" ] + [dataset.items.title(i) for i in range(1, dataset.n_items + 1)]
        self.titles = raw if self.cfg.titles == "raw" else [display_title(t) for t in raw]
        self.n_items = dataset.n_items
        self.ranker_options.setdefault("item_kind", dataset.domain.item_kind)
        self.ranker_options.setdefault("action", dataset.domain.action)

    def _ranker(self) -> Any:
        if self.ranker is None:
            self.ranker = make_ranker(self.ranker_name, self.backend, self.ranker_options)
            u = self.backend.usage  # a backend may be shared: report only the calls made from here on
            self._usage0 = (u.calls, u.cached_calls, dict(u.by_kind))
        return self.ranker

    def _ranker_cfg(self) -> Any:
        """The ranker's config (built from the options without a backend when nothing was ranked yet)."""
        if self.ranker is not None:
            return self.ranker.cfg
        return from_dict(self.entry.config, self.ranker_options, f"llm:{self.ranker_name} options")

    def contexts(self, batch: ScoreBatch) -> tuple[list[UserContext], list[list[str]], list[np.ndarray]]:
        """(user contexts, candidate titles, candidate column indices) for a batch; padding (0) dropped."""
        if batch.candidates is None:
            raise ConfigError(
                f"{self.name}: an LLM cannot rank the whole catalogue ({self.n_items} items, protocol full); "
                + PROTOCOL_HINT
            )
        hist = batch.history.numpy()  # (B, T) left-padded, most recent last
        cand = batch.candidates.numpy()  # (B, C)
        users, titles, cols = [], [], []
        for u, h, c in zip(batch.users.tolist(), hist, cand):
            users.append(UserContext(int(u), tuple(self.titles[i] for i in h if i > 0)))
            keep = np.nonzero(c > 0)[0]
            cols.append(keep)
            titles.append([self.titles[i] for i in c[keep]])
        return users, titles, cols

    def score(self, batch: ScoreBatch) -> torch.Tensor:
        if not self.titles:
            raise ConfigError(f"{self.name}: call fit(dataset, split) before score()")
        users, titles, cols = self.contexts(batch)
        ranker = self._ranker()
        t0 = time.perf_counter()
        results = ranker.rank(users, titles)
        self.wall_s += time.perf_counter() - t0
        out = np.full(tuple(batch.candidates.shape), PAD_SCORE, dtype=np.float64)  # (B, C)
        for b, (r, col) in enumerate(zip(results, cols)):
            out[b, col] = r.scores
            self.stats += r.stats
        self.users += len(results)
        self.last_results = results
        return torch.from_numpy(out)

    def report(self) -> dict[str, Any]:
        s, n = self.stats, max(self.users, 1)
        usage = getattr(self._backend, "usage", None) if self._backend is not None else None
        rep: dict[str, Any] = {
            "ranker": self.ranker_name,
            "llm": getattr(self._backend, "name", self.llm),
            "options": {**self.ranker_options, "titles": self.cfg.titles},
            "users": self.users,
            "parse_rate": round(s.parsed / s.outputs, 4) if s.outputs else None,
            "invalid_item_rate": round(s.invalid / s.named, 4) if s.named else None,
            "duplicate_rate": round(s.duplicates / s.named, 4) if s.named else None,
            "requests": s.requests,
            "cache_hits": s.cached,
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.completion_tokens,
            "prompt_tokens_per_user": round(s.prompt_tokens / n, 1),
            "completion_tokens_per_user": round(s.completion_tokens / n, 1),
            "wall_s": round(self.wall_s, 3),
            "wall_s_per_user": round(self.wall_s / n, 4),
        }
        if self.entry.generative:
            rep["unnamed_rule"] = self._ranker_cfg().unnamed
            rep["unnamed_share"] = round(s.unnamed / s.candidates, 4) if s.candidates else None
        else:
            rep["parse_rate"] = 1.0  # log-probabilities: nothing to parse, nothing invalid
            rep["invalid_item_rate"] = 0.0
            rep["duplicate_rate"] = 0.0
            rep["unnamed_rule"] = "n/a"  # every candidate gets a score: no candidate goes unnamed
            rep["unnamed_share"] = 0.0
        if usage is not None and self.ranker is not None:
            calls0, _, kinds0 = self._usage0
            rep["llm_calls"] = usage.calls - calls0  # requests that reached the model (not the cache)
            rep["llm_calls_by_kind"] = {
                k: v - kinds0.get(k, 0) for k, v in usage.by_kind.items() if v - kinds0.get(k, 0)
            }
        return rep


def _factory(arg: str | None, ctx: ScorerContext) -> LLMScorer:
    if not arg:
        raise ConfigError(f"scorer llm needs a ranker: llm:RANKER with RANKER one of {', '.join(RANKERS.names())}")
    return LLMScorer(arg, llm=ctx.llm, options=dict(ctx.options), seed=ctx.seed)


SCORERS.add("llm", _factory, "zero-shot LLM ranking of candidates: llm:nir|listwise|verbalizer|pointwise")
