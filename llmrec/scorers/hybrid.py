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

Two stages (LlamaRec style, `rerank:` in the config): the fused scores retrieve each user's top N valid columns,
a second scorer (typically `llm:verbalizer`) scores just those N, and they are placed above everything else in
the re-ranker's order (ties keep the first-stage order; tied in both stages, they stay tied); the rest keep the
first-stage order. Because stage two
only ever sees N candidates, a two-stage hybrid also works under full ranking.

Config (YAML; unknown keys are errors):

    components:
      - {name: sasrec, scorer: "run:runs/zsp/sasrec"}
      - {name: itemknn, scorer: itemknn}
      - {name: text, scorer: "text:minilm+adapters/ml-100k-minilm-lora", weight: 0.5}
    fusion: learned          # rrf | weighted | learned
    rerank: {scorer: "llm:verbalizer", top_n: 20, llm: "hf:smollm2-135m", options: {window: 20}}
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
from llmrec.types import Dataset, ScoreBatch, Split

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

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError(f"rerank.top_n must be ≥ 1, got {self.top_n}")


@dataclass
class HybridConfig:
    components: list[ComponentConfig] = field(default_factory=list)
    fusion: str = "rrf"  # rrf | weighted | learned
    rrf_k: float = 60.0
    grid_step: float = 0.1  # learned: the weight simplex is searched at this step
    learn_protocol: str = ""  # learned: candidate protocol on the validation split (default: the evaluated one)
    learn_users: int = 2000  # learned: at most this many validation users (seeded sample)
    rerank: RerankConfig | None = None
    name: str = "hybrid"

    def __post_init__(self) -> None:
        if not self.components:
            raise ValueError("a hybrid needs at least one component")
        if self.fusion not in ("rrf", "weighted", "learned"):
            raise ValueError(f"fusion must be rrf, weighted or learned, got {self.fusion!r}")
        names = [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"component names must be unique, got {names}")
        if not 0 < self.grid_step <= 1:
            raise ValueError("grid_step must be in (0, 1]")


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


def simplex_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """All weight vectors of n non-negative entries summing to 1 on a grid of `step`."""
    m = int(round(1 / step))
    return [tuple(c / m for c in combo) for combo in itertools.product(range(m + 1), repeat=n) if sum(combo) == m]


class HybridScorer:
    """Fusion of named component scorers (+ an optional re-ranking stage); see the module doc.

    After `score`, `last_components` holds each component's raw (B, C) scores for the batch, so a caller (the
    demo, `llmrec recommend --method hybrid`) can show why an item was ranked where it is.
    """

    def __init__(self, cfg: HybridConfig, ctx: ScorerContext | None = None) -> None:
        self.cfg = cfg
        self.ctx = ctx or ScorerContext()
        self.name = cfg.name
        self.components: dict[str, Scorer] = {}
        for c in cfg.components:
            sub = ScorerContext(seed=self.ctx.seed, llm=c.llm or self.ctx.llm, device=self.ctx.device,
                                options=dict(c.options))
            self.components[c.name] = build_scorer(c.scorer, sub)
        self.weights = [c.weight for c in cfg.components]
        self.reranker: Scorer | None = None
        if cfg.rerank is not None:
            r = cfg.rerank
            self.reranker = build_scorer(r.scorer, ScorerContext(seed=self.ctx.seed, llm=r.llm or self.ctx.llm,
                                                                 options=dict(r.options)))
        self.learned: dict[str, Any] = {}
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
        fused = self.first_stage(batch)  # (B, C)
        self.last_first_stage = fused
        if self.reranker is None:
            return fused
        return self._rerank(batch, fused)

    def _rerank(self, batch: ScoreBatch, fused: torch.Tensor) -> torch.Tensor:
        B, C = fused.shape
        n = min(self.cfg.rerank.top_n, C)  # type: ignore[union-attr]
        top = torch.topk(fused, n, dim=1).indices  # (B, n) columns, best first
        top_valid = fused.gather(1, top) > NEG / 2
        items = top if batch.candidates is None else batch.candidates.gather(1, top)  # (B, n) item ids
        items = torch.where(top_valid, items, torch.zeros_like(items))
        sub = ScoreBatch(batch.users, batch.history, items.to(torch.long), batch.phase)
        second = self.reranker.score(sub)  # type: ignore[union-attr]
        second = torch.as_tensor(second, dtype=torch.float64)
        # order inside the top n: by the re-ranker, ties by the first stage; tied in both: one (worst) rank
        order_key = rank_lexicographic(second, fused.gather(1, top), top_valid)  # (B, n), 1 = best
        out = fused.clone()
        base = fused.masked_fill(fused <= NEG / 2, 0).abs().max() + 1e6  # above every first-stage score
        bonus = base + (n + 1 - order_key)  # (B, n)
        out.scatter_(1, top, torch.where(top_valid, bonus, fused.gather(1, top)))
        return out

    def learn_weights(self, dataset: Dataset, split: Split, protocol: str) -> dict[str, Any]:
        """Grid search of the weight simplex for the best validation NDCG@10 (weighted z-score fusion)."""
        from llmrec.data.candidates import make_candidates

        cands = make_candidates(dataset, split, protocol, "valid", self.ctx.seed)
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
                hist = torch.from_numpy(split.history(u, "valid"))
                cand = None if cands.items is None else torch.from_numpy(cands.items[s : s + bs])
                batch = ScoreBatch(torch.from_numpy(u), hist, cand, "valid")
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
            "grid_points": len(results),
        }
        return self.learned

    def report(self) -> dict[str, Any]:
        rep: dict[str, Any] = {"fusion": self.cfg.fusion, "weights": dict(zip(self.components, self.weights))}
        if self.learned:
            rep["learned"] = self.learned
        for name, s in self.components.items():
            if hasattr(s, "report"):
                rep[f"component:{name}"] = s.report()
        if self.reranker is not None:
            rep["rerank"] = {"scorer": self.cfg.rerank.scorer, "top_n": self.cfg.rerank.top_n}  # type: ignore[union-attr]
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


SCORERS.add("hybrid", _factory, "fusion of scorers (rrf | weighted | learned) + optional re-ranking: hybrid:CONFIG.yaml")
