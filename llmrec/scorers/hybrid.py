"""Hybrid scorer `hybrid:CONFIG.yaml`: fuse any named scorers, optionally re-rank the top N with another one.

Fusion, per user over the valid columns (padding, and for full ranking the user's history, are excluded first):
- `rrf`: reciprocal-rank fusion, Σ_c w_c / (k + rank_c(i)), rank 1-based within the component (Cormack 2009);
  tied scores share the worst rank of their tie (pessimistic, as the evaluation): a component that gives every
  candidate the same score adds the same amount to each, favouring none.
- `weighted`: Σ_c w_c · z_c(i), each component's scores standardised per user (z-score over the valid columns).
- `learned`: `weighted` with weights chosen on the VALIDATION split: a grid over the weight simplex, keeping the
  weights with the best validation NDCG@10 on the same candidate protocol (the test targets are never read).
  The validation NDCG is what `evaluate` would report for the hybrid with those weights: the same columns
  excluded from fusion (`candidate_mask`, the validation target included when it is in the history, as `score`
  cannot know it), those columns scored NEG, and the target ranked pessimistically among the columns
  `evaluate` ranks it against.
- `ltr`: learning to rank (`llmrec.scorers.ltr`): LightGBM LambdaRank re-orders the retriever component's top N
  by per-candidate features (each component's z-score, optionally its rank and raw score; item popularity and
  recency; history length; text similarity; the re-ranker's LLM label log-probability), boosting from the
  retriever's own score, trained on the validation targets with K-fold cross-fitting over users. The test
  scores are the mean of the K fold models' scores.

Selection hygiene. Every fusion that learns (`learned`, `ltr`) reads validation targets only; the test targets
are never read. Two choices can still fall on the same validation user: a component's (an ID model `run:DIR`
early-stopped on validation NDCG@10 over all validation users; an adapter checkpoint chosen on validation) and
the fusion's. `ltr` cross-fits: no user's score comes from a combiner that trained or early-stopped on that
user, so its validation numbers are honest about the combiner. What remains is the component's own choice: its
validation scores are a little better than its test scores (its stopping epoch was picked on those targets), so
a fusion fitted on validation may lean on it a little more than test data would justify. `learned` chooses
its weights on (a sample of) the same users it reports. Removing the rest takes components early-stopped on
validation users disjoint from the ones the fusion learns on.

Two stages (LlamaRec style, `rerank:` in the config): the fused scores retrieve each user's top N valid columns,
a second scorer (typically `llm:verbalizer`) scores just those N, and they are placed above everything else in
the re-ranker's order (ties keep the first-stage order; tied in both stages, they stay tied); the rest keep the
first-stage order. `rerank.mix` blends instead of replacing: the top N ordered by (1-λ)·z(first stage) +
λ·z(re-ranker), with λ given or learned on validation users (`mix: learn`). Because stage two
only ever sees N candidates, a two-stage hybrid also works under full ranking. Under `fusion: ltr` the
re-ranker is not a last stage but a feature: it scores the retriever's first `rerank.top_n` candidates and the
combiner learns how far to trust it.

Config (YAML; unknown keys are errors):

    components:
      - {name: sasrec, scorer: "run:runs/zsp/sasrec"}
      - {name: itemknn, scorer: itemknn}
      - {name: text, scorer: "text:minilm+adapters/ml-100k-minilm-lora", weight: 0.5}
    fusion: learned          # rrf | weighted | learned | ltr
    rerank: {scorer: "llm:verbalizer", top_n: 20, llm: "hf:smollm2-135m", options: {window: 20}, mix: none}
    ltr: {retriever: sasrec, top_n: 100, folds: 5}   # fusion: ltr only; see LTRConfig
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.config import load_config
from llmrec.errors import ConfigError
from llmrec.evaluation.metrics import candidate_mask, per_user_metric, pessimistic_ranks, target_columns
from llmrec.scorers.base import SCORERS, Scorer, ScorerContext, build_scorer
from llmrec.types import Dataset, Phase, ScoreBatch, Split

NEG = -1e30  # score of excluded columns after fusion (finite, so arithmetic stays defined)


@dataclass
class ComponentConfig:
    name: str = ""
    scorer: str = ""  # any scorer spec: pop, itemknn, run:DIR, text:ENC[+ADAPTER], llm:RANKER, …
    weight: float = 1.0  # for rrf / weighted; learned fusion starts from the grid instead
    llm: str | None = None  # LLM spec for llm:* components (default: the context's --llm)
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.scorer:
            raise ValueError("every component needs a name and a scorer spec")
        if self.weight < 0:
            raise ValueError(f"component {self.name!r}: weight must be ≥ 0")


@dataclass
class RerankConfig:
    scorer: str = ""  # e.g. llm:verbalizer
    top_n: int = 20
    llm: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    # how the top N are ordered: none = by the re-ranker alone (LlamaRec); a number λ in [0, 1] = by
    # (1-λ)·z(first stage) + λ·z(re-ranker), z-scored over the user's top N; learn = λ on the grid 0, 0.1, …, 1
    # with the best validation NDCG@10 over `mix_users` seeded validation users (ties: the smaller λ)
    mix: Any = "none"
    mix_users: int = 200

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError(f"rerank.top_n must be ≥ 1, got {self.top_n}")
        if self.mix not in ("none", "learn") and not (
                isinstance(self.mix, (int, float)) and not isinstance(self.mix, bool) and 0 <= self.mix <= 1):
            raise ValueError(f"rerank.mix must be none, learn or a number in [0, 1], got {self.mix!r}")
        if self.mix_users < 1:
            raise ValueError(f"rerank.mix_users must be ≥ 1, got {self.mix_users}")


LTR_GROUPS = ("components", "popularity", "recency", "history", "text", "llm")


@dataclass
class LTRConfig:
    """The `ltr` fusion (`ltr:` in a hybrid config); what each setting does: `llmrec.scorers.ltr`."""

    retriever: str = ""  # whose top N the combiner re-orders: a component (default: the first) | rrf | weighted
    top_n: int = 100  # candidates per user the combiner ranks, in training and in scoring
    folds: int = 5  # K of the cross-fit over validation users
    inject_target: bool = False  # add a target the retriever missed to its user's group (a leak; see ltr.py)
    base: str = "retriever"  # boosting starts from: retriever (its z-score × base_scale) | none (0)
    base_scale: float = 1.0
    text: str = "auto"  # auto | none | minilm | a component's name | text:SPEC
    text_max_items: int = 20000  # `auto` without a text component: frozen MiniLM up to this catalogue size
    groups: list[str] = field(default_factory=list)  # feature groups used (empty = every one available)
    # per component: its z-score over the user's valid columns, 1-based rank, raw score. The z-score alone by
    # default: on ml-100k the raw scores and ranks only added noise (see ltr.py)
    component_features: list[str] = field(default_factory=lambda: ["z"])
    max_users: int = 0  # validation users learned from (a seeded sample; 0 = all)
    learning_rate: float = 0.05
    num_leaves: int = 4  # small trees: the training groups number in the hundreds to thousands
    min_data_in_leaf: int = 50
    lambda_l2: float = 1.0
    linear_tree: bool = True  # a linear model of the features in each leaf (a weighted fusion, per region)
    max_rounds: int = 500
    early_stopping: int = 30  # rounds without a gain in the inner folds' mean NDCG@10
    inner_folds: int = 3  # each fold model's round count: cross-validated over its own training users
    threads: int = 1  # LightGBM threads; results are reproducible at a fixed count

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError(f"ltr.top_n must be ≥ 1, got {self.top_n}")
        kinds = ("z", "rank", "score")
        if not self.component_features or any(k not in kinds for k in self.component_features):
            raise ValueError(f"ltr.component_features: a non-empty subset of {list(kinds)}, got "
                             f"{self.component_features}")
        if self.base not in ("retriever", "none"):
            raise ValueError(f"ltr.base must be retriever or none, got {self.base!r}")
        if self.folds < 2:
            raise ValueError(f"ltr.folds must be ≥ 2 (cross-fitting), got {self.folds}")
        bad = [g for g in self.groups if g not in LTR_GROUPS]
        if bad:
            raise ValueError(f"ltr.groups: unknown group {bad[0]!r}; groups: {', '.join(LTR_GROUPS)}")
        if self.inner_folds < 0 or self.inner_folds == 1:
            raise ValueError(f"ltr.inner_folds must be 0 (no round selection: max_rounds) or ≥ 2, got {self.inner_folds}")
        if self.learning_rate <= 0 or self.num_leaves < 2 or self.min_data_in_leaf < 1 or self.max_rounds < 1:
            raise ValueError("ltr: learning_rate > 0, num_leaves ≥ 2, min_data_in_leaf ≥ 1 and max_rounds ≥ 1")
        if self.early_stopping < 1 or self.threads < 1 or self.max_users < 0 or self.text_max_items < 0:
            raise ValueError("ltr: early_stopping and threads ≥ 1, max_users and text_max_items ≥ 0")


@dataclass
class HybridConfig:
    components: list[ComponentConfig] = field(default_factory=list)
    fusion: str = "rrf"  # rrf | weighted | learned | ltr
    rrf_k: float = 60.0
    grid_step: float = 0.1  # learned: the weight simplex is searched at this step
    learn_protocol: str = ""  # learned: candidate protocol on the validation split (default: the evaluated one)
    learn_users: int = 2000  # learned: at most this many validation users (seeded sample)
    rerank: RerankConfig | None = None
    ltr: LTRConfig = field(default_factory=LTRConfig)  # fusion: ltr
    name: str = "hybrid"

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError("a hybrid needs at least one component")
        if self.fusion not in ("rrf", "weighted", "learned", "ltr"):
            raise ValueError(f"fusion must be rrf, weighted, learned or ltr, got {self.fusion!r}")
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique, got {names}")
        if self.ltr.retriever and self.ltr.retriever not in names + ["rrf", "weighted"]:
            raise ValueError(f"ltr.retriever {self.ltr.retriever!r} is neither a component ({', '.join(names)}) "
                             f"nor rrf / weighted (that fusion of the components)")
        if not 0 < self.grid_step <= 1:
            raise ValueError("grid_step must be in (0, 1]")
        if self.fusion == "ltr" and self.rerank is not None and self.rerank.mix != "none":
            raise ValueError("rerank.mix blends a last stage; under fusion: ltr the re-ranker is a feature the "
                             "combiner weighs itself: drop rerank.mix")


def _nan_last(x: torch.Tensor) -> torch.Tensor:
    """float64 copy with NaN as -inf (torch.nan_to_num would also turn ±inf into finite numbers)."""
    x = x.to(torch.float64)
    return torch.where(torch.isnan(x), torch.full_like(x, -torch.inf), x)


def rank_within(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1-based pessimistic rank of each valid column within its row: the number of valid columns scoring at
    least as much (tied columns share the worst rank of their tie; NaN counts as -inf); invalid columns get
    rank C+1. (B, C) float64."""
    C = scores.shape[1]
    s = _nan_last(scores).masked_fill(~valid, -torch.inf)
    asc = torch.sort(s, dim=1).values  # (B, C) ascending; invalid columns (-inf) first
    at_least = C - torch.searchsorted(asc, s, right=False)  # (B, C) columns scoring >= s, invalid ones only at -inf
    ranks = torch.minimum(at_least, valid.sum(1, keepdim=True))  # a valid -inf: the last valid rank
    return torch.where(valid, ranks, torch.full_like(ranks, C + 1)).to(torch.float64)


def rank_lexicographic(primary: torch.Tensor, secondary: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1-based pessimistic rank by `primary`, ties by `secondary` (both higher = better): the number of valid
    columns ahead or tied on both; invalid columns get C+1. Pairwise, (B, C, C): for short rows (a top N)."""
    C = primary.shape[1]
    p, q = _nan_last(primary), _nan_last(secondary)
    pj, pi = p[:, None, :], p[:, :, None]  # (B, 1, C) the others, (B, C, 1) the column ranked
    qj, qi = q[:, None, :], q[:, :, None]
    ahead = ((pj > pi) | ((pj == pi) & (qj >= qi))) & valid[:, None, :]  # (B, C, C)
    ranks = ahead.sum(2)  # counts the column itself (tied with itself): 1-based
    return torch.where(valid, ranks, torch.full_like(ranks, C + 1)).to(torch.float64)


def zscore(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-row standardisation over the valid columns (0 where a row is constant)."""
    x = scores.to(torch.float64).masked_fill(~valid, 0.0)
    n = valid.sum(1, keepdim=True).clamp(min=1)
    mean = x.sum(1, keepdim=True) / n
    var = ((x - mean).masked_fill(~valid, 0.0) ** 2).sum(1, keepdim=True) / n
    return ((x - mean) / var.sqrt().clamp(min=1e-12)).masked_fill(~valid, 0.0)


def fuse(
    components: list[torch.Tensor], weights: list[float], valid: torch.Tensor, method: str, rrf_k: float = 60.0
) -> torch.Tensor:
    """Fused (B, C) scores; invalid columns get NEG. `method`: rrf (reciprocal rank) or weighted (z-scores)."""
    out = torch.zeros(valid.shape, dtype=torch.float64)
    for s, w in zip(components, weights):
        if w == 0:
            continue
        s = torch.nan_to_num(s.to(torch.float64), nan=-1e30, posinf=1e30, neginf=-1e30)
        if method == "rrf":
            out += w / (rrf_k + rank_within(s, valid))
        else:
            out += w * zscore(s, valid)
    return out.masked_fill(~valid, NEG)


def place_reranked(fused: torch.Tensor, top: torch.Tensor, top_valid: torch.Tensor, second: torch.Tensor,
                   mix: float | None) -> torch.Tensor:
    """The two-stage scores: each user's top-n columns (`top`, best first by `fused`) placed above every other
    column, ordered by the re-ranker's `second` scores (mix None) or by (1-mix)·z(first) + mix·z(second) over
    the valid top n; ties by the first stage, tied in both: one (worst) rank. The rest keep `fused`."""
    n = top.shape[1]
    first = fused.gather(1, top)
    primary = second
    if mix is not None:
        finite = torch.isfinite(second) & top_valid
        low = torch.where(finite, second, torch.full_like(second, torch.inf)).min(1, keepdim=True).values
        low = torch.where(torch.isfinite(low), low, torch.zeros_like(low))
        sec = torch.where(torch.isfinite(second), second, low - 1)  # a non-finite (unnamed) score: below the rest
        primary = (1 - mix) * zscore(first, top_valid) + mix * zscore(sec, top_valid)
    order_key = rank_lexicographic(primary, first, top_valid)  # (B, n), 1 = best
    out = fused.clone()
    base = fused.masked_fill(fused <= NEG / 2, 0).abs().max() + 1e6  # above every first-stage score
    bonus = base + (n + 1 - order_key)  # (B, n)
    out.scatter_(1, top, torch.where(top_valid, bonus, first))
    return out


def simplex_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """All weight vectors of n non-negative entries summing to 1 on a grid of `step`."""
    m = int(round(1 / step))
    return [tuple(c / m for c in combo) for combo in itertools.product(range(m + 1), repeat=n) if sum(combo) == m]


class HybridScorer:
    """Fusion of named component scorers (+ an optional re-ranking stage); see the module doc.

    After `score`, `last_components` holds each component's raw (B, C) scores for the batch, so a caller (the
    demo, `llmrec recommend --method hybrid`) can show why an item was ranked where it is.

    components: scorers already built for some of the config's component names (a benchmark shares fitted
    components between fusions); the others are built from their specs.
    """

    def __init__(self, cfg: HybridConfig, ctx: ScorerContext | None = None,
                 components: dict[str, Scorer] | None = None) -> None:
        self.cfg = cfg
        self.ctx = ctx or ScorerContext()
        self.name = cfg.name
        self.components: dict[str, Scorer] = {}
        given = dict(components or {})
        unknown = sorted(set(given) - {c.name for c in cfg.components})
        if unknown:
            raise ConfigError(f"prebuilt component {unknown[0]!r} is not in the config")
        for c in cfg.components:
            sub = ScorerContext(seed=self.ctx.seed, llm=c.llm or self.ctx.llm, device=self.ctx.device,
                                options=dict(c.options))
            self.components[c.name] = given[c.name] if c.name in given else build_scorer(c.scorer, sub)
        self.weights = [c.weight for c in cfg.components]
        self.reranker: Scorer | None = None
        if cfg.rerank is not None:
            r = cfg.rerank
            self.reranker = build_scorer(r.scorer, ScorerContext(seed=self.ctx.seed, llm=r.llm or self.ctx.llm,
                                                                 options=dict(r.options)))
        self.learned: dict[str, Any] = {}
        # λ of the re-ranking mix (None: the re-ranker's order alone); `learn` sets it in fit
        self.mix: float | None = None
        if cfg.rerank is not None and cfg.rerank.mix not in ("none", "learn"):
            self.mix = float(cfg.rerank.mix)
        self.mix_learned: dict[str, Any] = {}
        self.ltr: Any = None  # the fitted `llmrec.scorers.ltr.LTRFusion` (fusion: ltr)
        self.last_components: dict[str, torch.Tensor] = {}
        self.last_first_stage: torch.Tensor | None = None
        self.n_items = 0
        self.protocol = "full"
        self.batch_size = min([getattr(s, "batch_size", 512) or 512 for s in self.components.values()] + [512])

    def bind_protocol(self, protocol: str) -> None:
        """The candidate protocol about to be evaluated: learned weights are tuned on its validation twin
        (`nir`, defined on test users only, is replaced by NIR user filtering)."""
        self.protocol = "nir-uf:19" if protocol == "nir" else protocol

    def fit(self, dataset: Dataset, split: Split) -> None:
        self.n_items = dataset.n_items
        for s in self.components.values():
            s.fit(dataset, split)
        if self.reranker is not None:
            self.reranker.fit(dataset, split)
        if self.cfg.fusion == "learned" and not self.learned:
            self.learn_weights(dataset, split, self.cfg.learn_protocol or self.protocol)
        if self.cfg.fusion == "ltr" and self.ltr is None:
            self.fit_ltr(dataset, split, self.cfg.learn_protocol or self.protocol)
        rr = self.cfg.rerank
        if rr is not None and rr.mix == "learn" and not self.mix_learned and self.cfg.fusion != "ltr":
            self.learn_mix(dataset, split, self.cfg.learn_protocol or self.protocol)

    def fit_ltr(self, dataset: Dataset, split: Split, protocol: str, train_fn: Any = None) -> dict[str, Any]:
        """Fit the `ltr` combiner on `protocol`'s validation candidates (see `llmrec.scorers.ltr`); train_fn
        replaces LightGBM (tests instrument the cross-fit with it)."""
        from llmrec.data.candidates import make_candidates
        from llmrec.scorers.ltr import LTRFusion

        c = self.cfg.ltr
        cands = make_candidates(dataset, split, protocol, "valid", self.ctx.seed)
        if c.max_users and len(cands.users) > c.max_users:
            rng = np.random.default_rng(self.ctx.seed)
            cands = cands.subset(np.sort(rng.choice(len(cands.users), c.max_users, replace=False)))
        names = list(self.components)
        specs = [comp.scorer for comp in self.cfg.components]
        fusion = LTRFusion(c, names, specs, self.ctx.seed, train_fn, self.weights, self.cfg.rrf_k)
        llm_top = self.cfg.rerank.top_n if self.cfg.rerank is not None else 0
        fusion.fit(dataset, split, cands, self._component_scores, self.ctx, self.reranker, llm_top, self.batch_size)
        self.ltr = fusion
        return fusion.report()

    def _component_scores(self, batch: ScoreBatch) -> list[torch.Tensor]:
        out = []
        for name, s in self.components.items():
            scores = s.score(batch)
            if not isinstance(scores, torch.Tensor):
                scores = torch.as_tensor(np.asarray(scores))
            out.append(scores.detach().to("cpu", torch.float64))
            self.last_components[name] = out[-1]
        return out

    def first_stage(self, batch: ScoreBatch) -> torch.Tensor:
        comps = self._component_scores(batch)
        valid = candidate_mask(batch.history, batch.candidates, comps[0].shape[1])
        method = "weighted" if self.cfg.fusion == "learned" else self.cfg.fusion
        return fuse(comps, self.weights, valid, method, self.cfg.rrf_k)

    def score(self, batch: ScoreBatch) -> torch.Tensor:
        if self.cfg.fusion == "ltr":
            if self.ltr is None:
                raise RuntimeError("HybridScorer.score called before fit (fusion: ltr)")
            out = self.ltr.score(batch, self._component_scores(batch))
            self.last_first_stage = out
            return out
        fused = self.first_stage(batch)  # (B, C)
        self.last_first_stage = fused
        if self.reranker is None:
            return fused
        return self._rerank(batch, fused)

    def _rerank(self, batch: ScoreBatch, fused: torch.Tensor) -> torch.Tensor:
        top, top_valid, second = self._second_stage(batch, fused)
        return place_reranked(fused, top, top_valid, second, self.mix)

    def _second_stage(self, batch: ScoreBatch, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(top, top_valid, second): each user's top-n columns by the first stage (best first), which of them
        are real candidates, and the re-ranker's (B, n) scores of those items."""
        n = min(self.cfg.rerank.top_n, fused.shape[1])  # type: ignore[union-attr]
        top = torch.topk(fused, n, dim=1).indices  # (B, n) columns, best first
        top_valid = fused.gather(1, top) > NEG / 2
        items = top if batch.candidates is None else batch.candidates.gather(1, top)  # (B, n) item ids
        items = torch.where(top_valid, items, torch.zeros_like(items))
        sub = ScoreBatch(batch.users, batch.history, items.to(torch.long), batch.phase)
        second = self.reranker.score(sub)  # type: ignore[union-attr]
        return top, top_valid, torch.as_tensor(second, dtype=torch.float64)

    def learn_mix(self, dataset: Dataset, split: Split, protocol: str) -> dict[str, Any]:
        """`rerank.mix: learn`: λ from the grid 0, 0.1, …, 1 with the best NDCG@10 on the validation targets of
        `mix_users` seeded users (ties: the smaller λ, trusting the first stage). The re-ranker scores each
        user's top n once; every λ is then scored by `place_reranked`, the function `score` uses, under the
        masking `evaluate` uses. Test targets are never read."""
        from llmrec.data.candidates import make_candidates

        rr = self.cfg.rerank
        assert rr is not None and self.reranker is not None
        cands = make_candidates(dataset, split, protocol, "valid", self.ctx.seed)
        if len(cands.users) > rr.mix_users:
            rng = np.random.default_rng(self.ctx.seed)
            cands = cands.subset(np.sort(rng.choice(len(cands.users), rr.mix_users, replace=False)))
        parts: list[tuple[torch.Tensor, ...]] = []
        bs = self.batch_size
        with torch.inference_mode():
            for s in range(0, len(cands.users), bs):
                u = cands.users[s : s + bs]
                hist = torch.from_numpy(split.history(u, "valid"))
                cand = None if cands.items is None else torch.from_numpy(cands.items[s : s + bs])
                batch = ScoreBatch(torch.from_numpy(u), hist, cand, "valid")
                fused = self.first_stage(batch)
                top, top_valid, second = self._second_stage(batch, fused)
                mask = candidate_mask(hist, cand, fused.shape[1])
                ranked, col = target_columns(cand, torch.from_numpy(cands.targets[s : s + bs]), mask)
                parts.append((fused, top, top_valid, second, col, ranked))
        grid = [round(i / 10, 1) for i in range(11)]
        curve = {}
        for lam in grid:
            r = torch.cat([pessimistic_ranks(place_reranked(f, t, tv, sc, lam), c, v) for f, t, tv, sc, c, v in parts])
            curve[lam] = float(np.mean(per_user_metric(r.numpy(), "NDCG@10")))
        best = max(grid, key=lambda lam: (curve[lam], -lam))
        self.mix = best
        self.mix_learned = {"mix": best, "valid_NDCG@10": curve[best], "valid_NDCG@10_by_mix": curve,
                            "valid_protocol": protocol, "valid_users": int(len(cands.users))}
        return self.mix_learned

    def learn_weights(self, dataset: Dataset, split: Split, protocol: str, phase: Phase = "valid") -> dict[str, Any]:
        """Grid search of the weight simplex for the best validation NDCG@10 (weighted z-score fusion).
        phase="test" chooses the weights on the test targets: an oracle, for benchmark ablations only."""
        from llmrec.data.candidates import make_candidates

        cands = make_candidates(dataset, split, protocol, phase, self.ctx.seed)
        if self.cfg.learn_users and len(cands.users) > self.cfg.learn_users:
            rng = np.random.default_rng(self.ctx.seed)
            cands = cands.subset(np.sort(rng.choice(len(cands.users), self.cfg.learn_users, replace=False)))
        z_parts: list[list[torch.Tensor]] = [[] for _ in self.components]
        cols: list[torch.Tensor] = []
        valids: list[torch.Tensor] = []
        fused_valids: list[torch.Tensor] = []
        bs = self.batch_size
        with torch.inference_mode():
            for s in range(0, len(cands.users), bs):
                u = cands.users[s : s + bs]
                hist = torch.from_numpy(split.history(u, phase))
                cand = None if cands.items is None else torch.from_numpy(cands.items[s : s + bs])
                batch = ScoreBatch(torch.from_numpy(u), hist, cand, phase)
                comps = self._component_scores(batch)
                fused_cols = candidate_mask(hist, cand, comps[0].shape[1])  # (B, C) what `score` fuses
                tgt = torch.from_numpy(cands.targets[s : s + bs])
                ranked, col = target_columns(cand, tgt, fused_cols)  # (B, C) what `evaluate` ranks the target against
                for k, c in enumerate(comps):
                    z_parts[k].append(
                        zscore(torch.nan_to_num(c, nan=-1e30, posinf=1e30, neginf=-1e30), fused_cols).to(torch.float32)
                    )
                cols.append(col)
                fused_valids.append(fused_cols)
                valids.append(ranked)
        Z = [torch.cat(p) for p in z_parts]  # each (U, C)
        fused_valid = torch.cat(fused_valids)
        valid = torch.cat(valids)
        col = torch.cat(cols)
        results = []
        for w in simplex_grid(len(Z), self.cfg.grid_step):
            fused = sum(wk * zk for wk, zk in zip(w, Z) if wk)  # type: ignore[misc]
            fused = fused.masked_fill(~fused_valid, NEG)  # as `fuse`: a column `score` excludes scores NEG
            r = pessimistic_ranks(fused, col, valid).numpy()
            ndcg = float(np.mean(per_user_metric(r, "NDCG@10")))
            results.append((ndcg, w))
        best = max(results, key=lambda x: (x[0], -sum(1 for v in x[1] if v)))  # ties: fewer components
        self.weights = list(best[1])
        single = {name: nd for nd, w in results for name, wk in zip(self.components, w) if wk == 1.0}
        self.learned = {
            "weights": dict(zip(self.components, self.weights)),
            "valid_NDCG@10": best[0],
            "valid_NDCG@10_single": single,
            "valid_protocol": protocol,
            "valid_users": int(len(cands.users)),
            **({"phase": phase} if phase != "valid" else {}),
            "grid_points": len(results),
        }
        return self.learned

    def report(self) -> dict[str, Any]:
        rep: dict[str, Any] = {"fusion": self.cfg.fusion, "weights": dict(zip(self.components, self.weights))}
        if self.learned:
            rep["learned"] = self.learned
        if self.ltr is not None:
            rep["ltr"] = self.ltr.report()
            del rep["weights"]
        for name, s in self.components.items():
            if hasattr(s, "report"):
                rep[f"component:{name}"] = s.report()
        if self.reranker is not None:
            rep["rerank"] = {"scorer": self.cfg.rerank.scorer, "top_n": self.cfg.rerank.top_n,  # type: ignore[union-attr]
                             "mix": "none" if self.mix is None else self.mix}
            if self.mix_learned:
                rep["rerank"]["mix_learned"] = self.mix_learned
            if hasattr(self.reranker, "report"):
                rep["rerank"]["report"] = self.reranker.report()
        return rep


def load_hybrid_config(path: str | Path, overrides: list[str] | None = None) -> HybridConfig:
    return load_config(HybridConfig, path, overrides)


def _factory(arg: str | None, ctx: ScorerContext) -> HybridScorer:
    if not arg:
        raise ConfigError("scorer hybrid needs a config: --scorer hybrid:CONFIG.yaml")
    overrides = [f"{k}={v}" for k, v in ctx.options.items()]
    cfg = load_hybrid_config(arg, overrides)
    return HybridScorer(cfg, ctx)


SCORERS.add("hybrid", _factory,
            "fusion of scorers (rrf | weighted | learned | ltr) + optional re-ranking: hybrid:CONFIG.yaml")
