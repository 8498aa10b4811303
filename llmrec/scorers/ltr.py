"""Learning-to-rank fusion (`fusion: ltr` in a hybrid config): LightGBM LambdaRank over per-candidate features of
the retriever's top N, cross-fitted over validation users.

Training groups. For every validation user (a seeded sample of at most `ltr.max_users`; 0 = all), the
retriever's top `ltr.top_n` valid columns on the validation twin of the evaluated protocol, one row of features
each, label 1 for the validation target. The retriever (`ltr.retriever`) is a component (default the first), or
`rrf` / `weighted`: that fusion of all the components with their configured weights (nothing learned), whose
top N holds what any strong component ranks high — the combiner can only re-order what the retriever found. A user whose target the
retriever left out of its top N has no positive: LambdaRank draws no pairs from such a group, so it is left out
of training (its validation rank is the retriever's, whatever the combiner learns). `ltr.inject_target: true`
adds the target to such a group instead, as LlamaRec trains its ranker; it is off by default because an added
target is the only row whose retriever rank exceeds N, a region no served candidate ever reaches: the trees
learn "outside the retriever's top N => the answer" from it, and its group then carries no other gradient.

Features per (user, candidate), in groups (`ltr.groups` keeps a subset; every available one by default):
- components: each component's z-score over the user's valid columns (what `weighted` fuses) and, with
  `ltr.component_features`, its 1-based pessimistic rank among them and its raw score. The z-score alone is the
  default: on ml-100k (943 users, ~650 training groups) adding ranks and raw scores lowered the out-of-fold
  validation NDCG@10 (a raw logit means something else for every user; a rank repeats the z-score's order);
- popularity: log(1 + training interactions of the item);
- recency: t_end - t_last(item), the time since the item's last training interaction, t_end the latest training
  timestamp (NaN for an item never in training). Only where the data has one clock: a sequence file's
  timestamps are positions within each user, which no two users share, so there it is left out;
- history: the user's history length;
- text: the candidate's similarity to the history. A configured text component's own features serve (`ltr.text:
  auto` takes the first `text:` component; they move from `components` to this group); without one, frozen
  MiniLM (`text:minilm`: cosine to the recency-weighted mean of the history's item embeddings) when the
  catalogue has titles and at most `ltr.text_max_items` items (encoded once, cached on disk), else none;
- llm: the re-ranker's score (`rerank:` in the config, e.g. `llm:verbalizer`'s label log-lift) for the
  retriever's first `rerank.top_n` candidates, NaN below them. Under `ltr` the re-ranker is a feature, not a
  last stage.

The model. LightGBM LambdaRank (NDCG@10), boosting from the retriever's own z-score (`ltr.base: retriever`,
an init score; predictions add it back), so a combiner that finds nothing to correct stays the retriever rather
than re-learning its order from a few hundred positives; small linear trees by default (`linear_tree`, 4 leaves:
a weighted fusion of the features per region of the feature space), deterministic under the seed at a fixed
thread count.

Cross-fitting. The validation users are dealt into K = `ltr.folds` folds (a seeded permutation). Fold k's model
is given only the other folds' users: an inner cross-validation over them (`ltr.inner_folds`, by user) chooses
the number of boosting rounds (early stopping on mean NDCG@10), then the trees are grown on all of them. It
scores fold k's users. So every validation score comes from a model that neither trained nor chose anything on
that user, and the out-of-fold validation NDCG@10 in `report()` is honest; `score` on a validation batch uses
the same out-of-fold model per user, so `evaluate --phase valid` reproduces it. Test scores are the mean of the K
fold models' scores: the validation number describes exactly these models, the mean is a bagged ensemble with
less variance than any one of them, and no round count for a model on all users has to be guessed (each fold's
was chosen for the amount of data it was fitted on). Test targets are never read.

Scoring. The retriever's top N valid columns go above every other valid column in the combiner's order (tied
combiner scores stay tied, and the evaluator ranks ties pessimistically); the other columns keep the retriever's
order. Retriever ties across the N-th place are cut by column (the lower item id or candidate column first).

Selection hygiene: what the cross-fit does not cover. A component chosen on the validation targets (an ID model
early-stopped on validation NDCG@10, `run:DIR` from `llmrec pretrain`; an adapter whose checkpoint was picked on
validation) has seen every validation user's target through that choice. Its validation scores are then a little
better than its test scores, and a combiner trained on validation may trust it a little more than test data
would warrant. The cross-fit keeps the combiner's own choices (trees, round counts) off the users they score; it
cannot undo a component's. Early-stopping the components on users disjoint from the combiner's removes the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from llmrec.errors import ConfigError, LLMRecError
from llmrec.evaluation.metrics import candidate_mask, per_user_metric, pessimistic_ranks, target_columns
from llmrec.scorers.base import Scorer, ScorerContext, build_scorer
from llmrec.scorers.hybrid import LTR_GROUPS as GROUPS
from llmrec.scorers.hybrid import NEG, LTRConfig, _nan_last, fuse, rank_within, zscore
from llmrec.types import Dataset, ScoreBatch, Split, _ranges

if TYPE_CHECKING:
    from llmrec.types import CandidateSet


# ---------------------------------------------------------------------------------------------- item statistics


def train_positions(split: Split) -> np.ndarray:
    """Positions in `split.items` of every training interaction (each sequence minus its held-out items)."""
    s, e = split.history_bounds(np.arange(split.n_users + 1), "train")
    return _ranges(s, e)


def has_global_clock(split: Split) -> bool:
    """False when the timestamps are positions within each user (0..L-1 for every user: a sequence file), which
    no two users share; True for real times or a file's global row order."""
    within = np.arange(len(split.items)) - np.repeat(split.indptr[:-1], split.lengths)
    return not np.array_equal(split.timestamps, within)


@dataclass
class ItemStats:
    """Item features from the training part of the split. (N+1,) float64 each; entry 0 is padding."""

    log_pop: np.ndarray  # log(1 + training interactions)
    recency: np.ndarray | None  # t_end - t_last(item), NaN if never in training; None without a global clock


def item_stats(split: Split) -> ItemStats:
    pos = train_positions(split)
    items, ts = split.items[pos], split.timestamps[pos].astype(np.float64)
    counts = np.bincount(items, minlength=split.n_items + 1)
    recency = None
    if has_global_clock(split) and len(ts):
        last = np.full(split.n_items + 1, -np.inf)
        np.maximum.at(last, items, ts)
        recency = np.where(counts > 0, ts.max() - last, np.nan)
    return ItemStats(np.log1p(counts.astype(np.float64)), recency)


# ---------------------------------------------------------------------------------------------- features


def top_columns(scores: torch.Tensor, valid: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The n best valid columns of each row by `scores`, best first, ties by column (lowest first): (B, n) columns
    and (B, n) validity (False where a row has fewer than n valid columns)."""
    s = _nan_last(scores).masked_fill(~valid, -torch.inf)
    n = min(n, s.shape[1])
    top = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :n]  # (B, n)
    return top, valid.gather(1, top)


@dataclass
class FeatureSpec:
    """Which features exist for a fitted fusion: names, their groups, and where the text and LLM ones come from."""

    components: list[str]
    text_component: int | None  # index of the component whose features are the `text` group
    text_scorer: bool  # a frozen text scorer of the fusion's own (`text_sim`)
    recency: bool
    llm: bool
    names: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for k, c in enumerate(self.components):
            g = "text" if k == self.text_component else "components"
            self.names += [f"{c}:score", f"{c}:rank", f"{c}:z"]
            self.groups += [g, g, g]
        extra = [("popularity", "popularity", True), ("recency", "recency", self.recency),
                 ("history_len", "history", True), ("text_sim", "text", self.text_scorer),
                 ("llm_score", "llm", self.llm)]
        for name, group, present in extra:
            if present:
                self.names.append(name)
                self.groups.append(group)

    def columns(self, groups: list[str] | tuple[str, ...], kinds: list[str] | tuple[str, ...] = ("score", "rank", "z")
                ) -> np.ndarray:
        """Indices of the features in `groups`, of the component features only the `kinds` (score, rank, z)."""
        n_comp = 3 * len(self.components)
        return np.array([i for i, g in enumerate(self.groups) if g in groups
                         and (i >= n_comp or self.names[i].rsplit(":", 1)[1] in kinds)], dtype=np.int64)


def candidate_features(
    spec: FeatureSpec,
    stats: ItemStats,
    batch: ScoreBatch,
    comps: list[torch.Tensor],
    valid: torch.Tensor,
    cols: torch.Tensor,
    cols_valid: torch.Tensor,
    text: torch.Tensor | None = None,
    llm: torch.Tensor | None = None,
) -> np.ndarray:
    """(B, n, F) float32 features (`spec.names`) of the columns `cols` (B, n) of a batch.

    comps: each component's (B, C) scores; valid: (B, C) the columns fused (`candidate_mask`); text, llm: (B, n)
    scores of the fusion's own text scorer and of the re-ranker at those columns (NaN where not scored)."""
    B, n = cols.shape
    parts: list[torch.Tensor] = []
    for s in comps:
        s = s.to(torch.float64)
        raw = torch.where(torch.isfinite(s), s, torch.full_like(s, torch.nan))
        clean = torch.nan_to_num(s, nan=-1e30, posinf=1e30, neginf=-1e30)
        parts += [raw.gather(1, cols), rank_within(s, valid).gather(1, cols), zscore(clean, valid).gather(1, cols)]
    items = cols if batch.candidates is None else batch.candidates.gather(1, cols)  # (B, n) item ids
    items = items.clamp(0, len(stats.log_pop) - 1)
    parts.append(torch.from_numpy(stats.log_pop)[items])
    if spec.recency:
        parts.append(torch.from_numpy(stats.recency)[items])  # type: ignore[arg-type]
    parts.append((batch.history > 0).sum(1, keepdim=True).to(torch.float64).expand(B, n))
    if spec.text_scorer:
        parts.append(text.to(torch.float64) if text is not None else torch.full((B, n), torch.nan, dtype=torch.float64))
    if spec.llm:
        parts.append(llm.to(torch.float64) if llm is not None else torch.full((B, n), torch.nan, dtype=torch.float64))
    X = torch.stack(parts, dim=2)  # (B, n, F)
    X = X.masked_fill(~cols_valid[:, :, None], torch.nan)
    return X.numpy().astype(np.float32)


def assemble(retriever: torch.Tensor, valid: torch.Tensor, top: torch.Tensor, top_valid: torch.Tensor,
             preds: torch.Tensor) -> torch.Tensor:
    """Final (B, C) scores: the top columns in the order of `preds` (B, n), above every other valid column, which
    keep the retriever's order; ties stay ties; invalid columns NEG."""
    C = retriever.shape[1]
    n = top.shape[1]
    out = (-rank_within(retriever, valid)).masked_fill(~valid, NEG)  # (B, C) in [-C, -1]
    p = torch.where(top_valid, preds.to(torch.float64), torch.zeros_like(preds, dtype=torch.float64))
    bonus = (C + 1) + (n + 1 - rank_within(p, top_valid))  # (B, n) in [C+2, C+1+n]
    out.scatter_(1, top, torch.where(top_valid, bonus, out.gather(1, top)))
    return out


# ---------------------------------------------------------------------------------------------- ranking data


@dataclass
class RankingData:
    """Rows of LambdaRank groups: one group per user, its rows contiguous.

    X: (R, F) float32 features; y: (R,) 0/1 labels; group: (R,) index of the row's group in `users`;
    users: (G,) the user id of each group; served: (R,) True for a row of the retriever's top N (False: a target
    added for training only); base: (R,) the score boosting starts from (`ltr.base`; None = 0)."""

    X: np.ndarray
    y: np.ndarray
    group: np.ndarray
    users: np.ndarray
    served: np.ndarray
    base: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.base is None:
            self.base = np.zeros(len(self.y), dtype=np.float64)

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.group, minlength=len(self.users))

    def take(self, groups: np.ndarray, columns: np.ndarray | None = None) -> RankingData:
        """The groups `groups` (indices into `users`, ascending), optionally only some feature columns."""
        groups = np.asarray(groups, dtype=np.int64)
        rows = np.isin(self.group, groups)
        remap = np.full(len(self.users), -1, dtype=np.int64)
        remap[groups] = np.arange(len(groups))
        X = self.X[rows] if columns is None else self.X[rows][:, columns]
        return RankingData(X, self.y[rows], remap[self.group[rows]], self.users[groups], self.served[rows],
                           self.base[rows])  # type: ignore[index]

    @classmethod
    def concat(cls, parts: list[RankingData], n_features: int) -> RankingData:
        if not parts:
            return cls(np.zeros((0, n_features), np.float32), np.zeros(0, np.int8), np.zeros(0, np.int64),
                       np.zeros(0, np.int64), np.zeros(0, bool))
        offsets = np.cumsum([0] + [len(p.users) for p in parts[:-1]])
        return cls(np.concatenate([p.X for p in parts]), np.concatenate([p.y for p in parts]),
                   np.concatenate([p.group + o for p, o in zip(parts, offsets)]),
                   np.concatenate([p.users for p in parts]), np.concatenate([p.served for p in parts]),
                   np.concatenate([p.base for p in parts]))  # type: ignore[misc]


class Ranker(Protocol):
    """A trained combiner: scores for the rows of some `RankingData`, and per-feature gain importances."""

    best_round: int

    def predict(self, data: RankingData) -> np.ndarray: ...

    def importance(self) -> np.ndarray: ...


TrainFn = Callable[[RankingData, LTRConfig, int], Ranker]


@dataclass
class LightGBMRanker:
    booster: Any
    best_round: int
    threads: int = 1

    def predict(self, data: RankingData) -> np.ndarray:
        if len(data.X) == 0:
            return np.zeros(0)
        raw = self.booster.predict(data.X, num_iteration=self.best_round, num_threads=self.threads)
        return np.asarray(raw) + data.base  # the trees correct the starting score (init_score in training)

    def importance(self) -> np.ndarray:
        return np.asarray(self.booster.feature_importance("gain", iteration=self.best_round), dtype=np.float64)


def lightgbm_params(cfg: LTRConfig, seed: int) -> dict[str, Any]:
    """LambdaRank on NDCG@10, deterministic under the seed (one code path: row-wise histograms, fixed threads,
    no bagging or feature sampling)."""
    return {
        "objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves, "min_data_in_leaf": cfg.min_data_in_leaf, "lambda_l2": cfg.lambda_l2,
        "seed": seed, "deterministic": True, "force_row_wise": True, "num_threads": cfg.threads,
        "feature_pre_filter": False, "verbosity": -1, "linear_tree": cfg.linear_tree,
    }


def assign_folds(n: int, k: int, seed: int | list[int]) -> np.ndarray:
    """(n,) fold of each of n users: a seeded permutation dealt round-robin into k folds of near-equal size."""
    perm = np.random.default_rng(seed).permutation(n)
    fold = np.empty(n, dtype=np.int64)
    fold[perm] = np.arange(n) % k
    return fold


def train_lambdarank(train: RankingData, cfg: LTRConfig, seed: int) -> LightGBMRanker:
    """LightGBM LambdaRank on `train`'s groups. The number of rounds is chosen by an inner cross-validation over
    those groups (`cfg.inner_folds`, seeded; `lightgbm.cv` stops when the mean held-out NDCG@10 has not risen
    for `cfg.early_stopping` rounds), then one model is fitted on all of them for that many rounds. With fewer
    groups holding a positive than inner folds, it takes `cfg.max_rounds`."""
    import lightgbm as lgb

    params = lightgbm_params(cfg, seed)
    data = lgb.Dataset(train.X, train.y, group=train.sizes, init_score=train.base, free_raw_data=False,
                       params={"verbosity": -1, "feature_pre_filter": False})
    rounds = cfg.max_rounds
    positive = np.zeros(len(train.users), bool)
    positive[train.group[train.y > 0]] = True
    if cfg.inner_folds >= 2 and positive.sum() >= cfg.inner_folds:
        fold = assign_folds(len(train.users), cfg.inner_folds, [seed, 1])
        folds = [(np.nonzero(fold[train.group] != k)[0], np.nonzero(fold[train.group] == k)[0])
                 for k in range(cfg.inner_folds)]
        curve = lgb.cv(params, data, num_boost_round=cfg.max_rounds, folds=folds,
                       callbacks=[lgb.early_stopping(cfg.early_stopping, verbose=False)])
        rounds = len(curve["valid ndcg@10-mean"])
    booster = lgb.train(params, data, num_boost_round=rounds)
    return LightGBMRanker(booster, rounds, cfg.threads)


@dataclass
class CrossFit:
    models: list[Ranker]
    oof: np.ndarray  # (R,) every row's score from the model of the fold that did not train on its user
    train_users: list[np.ndarray]  # per fold: the users whose groups the model was given (fit and round count)
    scored_users: list[np.ndarray]  # per fold: the users it scored (its held-out fold)


def cross_fit(data: RankingData, group_fold: np.ndarray, cfg: LTRConfig, seed: int, columns: np.ndarray,
              train_fn: TrainFn | None = None) -> CrossFit:
    """K models: fold k's is given only the groups of the other folds, and scores fold k's."""
    train_fn = train_fn or train_lambdarank
    oof = np.zeros(len(data.y), dtype=np.float64)
    models: list[Ranker] = []
    trained, scored = [], []
    for k in range(cfg.folds):
        held = np.nonzero(group_fold == k)[0]
        rest = np.nonzero(group_fold != k)[0]
        train = data.take(rest, columns)
        if not train.y.any():
            raise LLMRecError(f"ltr: fold {k} has no training user whose validation target is in the retriever's "
                              f"top {cfg.top_n}; use fewer folds, a larger top_n or more validation users")
        model = train_fn(train, cfg, seed * 1000 + k)
        oof[np.isin(data.group, held)] = model.predict(data.take(held, columns))
        models.append(model)
        trained.append(data.users[rest])
        scored.append(data.users[held])
    return CrossFit(models, oof, trained, scored)


# ---------------------------------------------------------------------------------------------- the fusion


@dataclass
class ValidationRecord:
    """What the validation pass keeps for each validation user, to rank the target for any combiner scores."""

    users: np.ndarray  # (U,)
    fold: np.ndarray  # (U,)
    fallback_rank: np.ndarray  # (U,) 0-based rank of the target when it is not served (the retriever's order)
    target_row: np.ndarray  # (U,) row of the served target in `data`, -1 when not served


class LTRFusion:
    """The `ltr` fusion of a `HybridScorer`; see the module doc. `fit` reads validation targets only."""

    def __init__(self, cfg: LTRConfig, names: list[str], specs: list[str], seed: int = 0,
                 train_fn: TrainFn | None = None, weights: list[float] | None = None, rrf_k: float = 60.0) -> None:
        self.cfg = cfg
        self.names = names
        self.specs = specs
        self.seed = seed
        self.train_fn = train_fn
        self.weights = list(weights) if weights is not None else [1.0] * len(names)
        self.rrf_k = rrf_k
        # a fused retriever (`rrf` / `weighted` of the components, their configured weights) is one more
        # component for the features, after the real ones
        self.fused = cfg.retriever in ("rrf", "weighted") and cfg.retriever not in names
        self.feature_components = names + [cfg.retriever] if self.fused else list(names)
        self.retriever = len(names) if self.fused else (names.index(cfg.retriever) if cfg.retriever else 0)
        self.spec: FeatureSpec | None = None
        self.stats: ItemStats | None = None
        self.text_scorer: Scorer | None = None
        self.text_source = "none"
        self.llm: Scorer | None = None
        self.llm_top = 0
        self.columns = np.zeros(0, np.int64)
        self.models: list[Ranker] = []
        self.user_fold = np.zeros(0, np.int64)  # (n_users+1,) fold of each validation user, -1 for the others
        self.data: RankingData | None = None
        self.crossfit: CrossFit | None = None
        self.record: ValidationRecord | None = None
        self.info: dict[str, Any] = {}

    # -- setup -----------------------------------------------------------------------------------------------

    def _resolve_text(self, dataset: Dataset, split: Split, ctx: ScorerContext) -> tuple[int | None, bool]:
        t = self.cfg.text
        if t not in self.names and t not in ("auto", "none", "minilm") and not t.startswith("text:"):
            raise ConfigError(f"ltr.text {t!r}: use auto, none, minilm, a text:SPEC or a component's name "
                              f"({', '.join(self.names)})")
        if t == "none":
            return None, False
        if t in self.names:
            self.text_source = f"component {t}"
            return self.names.index(t), False
        if t == "auto":
            for k, s in enumerate(self.specs):
                if s.startswith("text:") or s == "text":
                    self.text_source = f"component {self.names[k]}"
                    return k, False
            if not dataset.items.has_titles:
                self.text_source = "none (the catalogue has no titles)"
                return None, False
            if dataset.n_items > self.cfg.text_max_items:
                self.text_source = f"none ({dataset.n_items} items > text_max_items {self.cfg.text_max_items})"
                return None, False
            t = "minilm"
        spec = t if t.startswith("text:") else f"text:{t}"
        self.text_scorer = build_scorer(spec, ScorerContext(seed=ctx.seed, device=ctx.device))
        self.text_scorer.fit(dataset, split)
        self.text_source = f"frozen {spec}"
        return None, True

    def setup(self, dataset: Dataset, split: Split, ctx: ScorerContext, llm: Scorer | None, llm_top: int) -> None:
        self.stats = item_stats(split)
        text_component, text_scorer = self._resolve_text(dataset, split, ctx)
        self.llm, self.llm_top = llm, min(llm_top, self.cfg.top_n)
        self.spec = FeatureSpec(list(self.feature_components), text_component, text_scorer, self.stats.recency is not None,
                                llm is not None)
        wanted = self.cfg.groups or list(GROUPS)
        self.columns = self.spec.columns(wanted, self.cfg.component_features)
        if not len(self.columns):
            raise ConfigError(f"ltr.groups {wanted} select no feature; available groups: "
                              f"{sorted(set(self.spec.groups))}")

    # -- features of a batch ---------------------------------------------------------------------------------

    def extend(self, comps: list[torch.Tensor], valid: torch.Tensor) -> list[torch.Tensor]:
        """The components' (B, C) scores, plus the fused retriever's when `ltr.retriever` is rrf / weighted."""
        if not self.fused or len(comps) > len(self.names):
            return comps
        return [*comps, fuse(comps, self.weights, valid, self.cfg.retriever, self.rrf_k)]

    def features(self, batch: ScoreBatch, comps: list[torch.Tensor], llm_rows: np.ndarray | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
        """(valid (B, C), top (B, n), top_valid (B, n), X (B, n, F)) for the retriever's top N of a batch.
        comps: the components' scores; llm_rows: (B,) bool, the users to ask the re-ranker about (default all)."""
        assert self.spec is not None and self.stats is not None
        valid = candidate_mask(batch.history, batch.candidates, comps[0].shape[1])
        comps = self.extend(comps, valid)
        top, top_valid = top_columns(comps[self.retriever], valid, self.cfg.top_n)
        items = top if batch.candidates is None else batch.candidates.gather(1, top)
        items = torch.where(top_valid, items, torch.zeros_like(items)).to(torch.long)
        text = None
        if self.text_scorer is not None:
            text = torch.as_tensor(self.text_scorer.score(ScoreBatch(batch.users, batch.history, items, batch.phase)))
        llm = None
        if self.llm is not None:
            llm = self.llm_scores(batch, items, top_valid, llm_rows)
        X = candidate_features(self.spec, self.stats, batch, comps, valid, top, top_valid, text, llm)
        return valid, top, top_valid, X

    def llm_scores(self, batch: ScoreBatch, items: torch.Tensor, top_valid: torch.Tensor,
                   rows: np.ndarray | None) -> torch.Tensor:
        B, n = items.shape
        out = torch.full((B, n), torch.nan, dtype=torch.float64)
        pick = np.arange(B) if rows is None else np.nonzero(rows)[0]
        if not len(pick) or self.llm_top == 0:
            return out
        idx = torch.from_numpy(pick)
        sub = ScoreBatch(batch.users[idx], batch.history[idx], items[idx, : self.llm_top], batch.phase)
        s = torch.as_tensor(self.llm.score(sub), dtype=torch.float64)  # type: ignore[union-attr]
        ok = top_valid[idx, : self.llm_top]
        out[idx, : self.llm_top] = torch.where(ok, s, torch.full_like(s, torch.nan))
        return out

    def base_of(self, X: np.ndarray) -> np.ndarray:
        """(R,) the score boosting starts from for rows X (R, F): `ltr.base_scale` × the retriever's z-score
        (`ltr.base: retriever`), or 0 (`none`)."""
        assert self.spec is not None
        if self.cfg.base == "none":
            return np.zeros(len(X), dtype=np.float64)
        z = X[:, self.spec.names.index(f"{self.feature_components[self.retriever]}:z")].astype(np.float64)
        return self.cfg.base_scale * np.nan_to_num(z, nan=0.0)

    # -- fit -------------------------------------------------------------------------------------------------

    def fit(self, dataset: Dataset, split: Split, cands: CandidateSet, score_components: Callable[[ScoreBatch], list[torch.Tensor]],
            ctx: ScorerContext, llm: Scorer | None = None, llm_top: int = 0, batch_size: int = 512) -> dict[str, Any]:
        """Features of the validation users of `cands` (phase valid), then the cross-fit; see the module doc."""
        t0 = time.perf_counter()
        self.setup(dataset, split, ctx, llm, llm_top)
        assert self.spec is not None
        U = len(cands.users)
        fold = assign_folds(len(cands.users), self.cfg.folds, self.seed)
        fallback = np.zeros(U, dtype=np.float64)
        target_row = np.full(U, -1, dtype=np.int64)
        parts: list[RankingData] = []
        n_rows = 0
        n_served = n_injected = 0
        F = len(self.spec.names)
        with torch.inference_mode():
            for s in range(0, U, batch_size):
                u = cands.users[s : s + batch_size]
                hist = torch.from_numpy(split.history(u, "valid"))
                cand = None if cands.items is None else torch.from_numpy(cands.items[s : s + batch_size])
                batch = ScoreBatch(torch.from_numpy(u), hist, cand, "valid")
                comps = score_components(batch)
                tgt = torch.from_numpy(cands.targets[s : s + batch_size])
                valid = candidate_mask(hist, cand, comps[0].shape[1])
                comps = self.extend(comps, valid)
                top, top_valid = top_columns(comps[self.retriever], valid, self.cfg.top_n)
                items = top if cand is None else cand.gather(1, top)
                hit = (items == tgt[:, None]) & top_valid  # (B, n)
                served = hit.any(1).numpy()
                ranked, col = target_columns(cand, tgt, valid)
                base = assemble(comps[self.retriever], valid, top, top_valid, torch.zeros(top.shape))
                fallback[s : s + len(u)] = pessimistic_ranks(base, col, ranked).numpy()
                injectable = (~torch.from_numpy(served)) & (col >= 0) & valid.gather(1, col.clamp(min=0)[:, None])[:, 0]
                keep = served | (self.cfg.inject_target & injectable.numpy())
                if not keep.any():
                    continue
                _, _, _, X = self.features(batch, comps, llm_rows=keep)  # (B, n, F)
                Xi = None
                if self.cfg.inject_target and injectable.any():
                    tcol, tok = col.clamp(min=0)[:, None], injectable[:, None]  # (B, 1)
                    text_i = None
                    if self.text_scorer is not None:
                        titems = tcol if cand is None else cand.gather(1, tcol)
                        titems = torch.where(tok, titems, torch.zeros_like(titems)).to(torch.long)
                        text_i = torch.as_tensor(self.text_scorer.score(ScoreBatch(batch.users, hist, titems, "valid")))
                    Xi = candidate_features(self.spec, self.stats, batch, comps, valid, tcol, tok,  # type: ignore[arg-type]
                                            text_i)  # (B, 1, F)
                tv, hitn = top_valid.numpy(), hit.numpy()
                for b in np.nonzero(keep)[0]:
                    rows = np.nonzero(tv[b])[0]
                    x, y, sv = X[b, rows], hitn[b, rows].astype(np.int8), np.ones(len(rows), bool)
                    if served[b]:
                        target_row[s + b] = n_rows + int(np.nonzero(y)[0][0])
                        n_served += 1
                    else:
                        x = np.concatenate([x, Xi[b]])  # type: ignore[index]
                        y = np.concatenate([y, np.ones(1, np.int8)])
                        sv = np.concatenate([sv, np.zeros(1, bool)])
                        n_injected += 1
                    parts.append(RankingData(x, y, np.zeros(len(y), np.int64), u[b : b + 1], sv))
                    n_rows += len(y)
        data = RankingData.concat(parts, F)
        data.base = self.base_of(data.X)
        self.data = data
        self.record = ValidationRecord(cands.users, fold, fallback, target_row)
        user_fold = np.full(split.n_users + 1, -1, dtype=np.int64)
        user_fold[cands.users] = fold
        self.user_fold = user_fold
        fit_s = time.perf_counter() - t0
        group_fold = user_fold[data.users]
        cf = cross_fit(data, group_fold, self.cfg, self.seed, self.columns, self.train_fn)
        self.models = cf.models
        self.crossfit = cf
        imp = np.sum([m.importance() for m in cf.models], axis=0)
        share = imp / imp.sum() if imp.sum() > 0 else imp
        used = [self.spec.names[c] for c in self.columns]
        group_share: dict[str, float] = {}
        for c, v in zip(self.columns, share):
            group_share[self.spec.groups[c]] = group_share.get(self.spec.groups[c], 0.0) + float(v)
        retr = self.spec.names.index(f"{self.feature_components[self.retriever]}:score")
        self.info = {
            "retriever": self.feature_components[self.retriever],
            "top_n": self.cfg.top_n,
            "folds": self.cfg.folds,
            "features": used,
            "groups": sorted({self.spec.groups[c] for c in self.columns}),
            "text_source": self.text_source,
            "recency": self.spec.recency,
            "llm_top": self.llm_top if self.llm is not None else 0,
            "valid_protocol": cands.protocol,
            "valid_users": int(U),
            "target_in_top_n": round(n_served / max(U, 1), 4),
            "train_groups": int(len(data.users)),
            "injected_targets": int(n_injected),
            "valid_NDCG@10_oof": self.oof_ndcg(cf.oof),
            "valid_NDCG@10_retriever": self.oof_ndcg(data.X[:, retr].astype(np.float64)),
            "best_rounds": [int(m.best_round) for m in cf.models],
            "importance_gain_share": {n: round(float(v), 4) for n, v in zip(used, share)},
            "group_gain_share": {g: round(v, 4) for g, v in sorted(group_share.items(), key=lambda x: -x[1])},
            "test_model": f"mean of the {self.cfg.folds} fold models' scores",
            "feature_seconds": round(fit_s, 2),
            "fit_seconds": round(time.perf_counter() - t0, 2),
        }
        return self.info

    def oof_ranks(self, scores: np.ndarray) -> np.ndarray:
        """(U,) 0-based pessimistic rank of each validation target when the served rows score `scores` (R,)."""
        assert self.data is not None and self.record is not None
        d, rec = self.data, self.record
        ranks = rec.fallback_rank.copy()
        starts = np.concatenate([[0], np.cumsum(d.sizes)])  # groups are contiguous runs of rows
        for i in np.nonzero(rec.target_row >= 0)[0]:
            r = rec.target_row[i]
            rows = slice(starts[d.group[r]], starts[d.group[r] + 1])
            ranks[i] = float(((scores[rows] >= scores[r]) & d.served[rows]).sum() - 1)
        return ranks

    def oof_ndcg(self, scores: np.ndarray) -> float:
        return float(np.mean(per_user_metric(self.oof_ranks(scores), "NDCG@10")))

    def ablation(self) -> dict[str, float]:
        """Out-of-fold validation NDCG@10 with all the used feature groups, and without each in turn (the same
        folds and seeds; new combiners, the fitted ones are kept)."""
        assert self.data is not None and self.spec is not None
        group_fold = self.user_fold[self.data.users]
        used = sorted({self.spec.groups[c] for c in self.columns})
        out = {"all": self.info.get("valid_NDCG@10_oof", float("nan"))}
        for g in used:
            cols = np.array([c for c in self.columns if self.spec.groups[c] != g], dtype=np.int64)
            if not len(cols):
                continue
            cf = cross_fit(self.data, group_fold, self.cfg, self.seed, cols, self.train_fn)
            out[f"without {g}"] = self.oof_ndcg(cf.oof)
        return out

    # -- score -----------------------------------------------------------------------------------------------

    def score(self, batch: ScoreBatch, comps: list[torch.Tensor]) -> torch.Tensor:
        """(B, C) final scores. Validation batches: each user scored by the fold model that never saw it (users
        outside the validation sample, and every test batch: the mean of the fold models)."""
        if not self.models:
            raise LLMRecError("the ltr fusion is not fitted: call fit(dataset, split) first")
        comps = self.extend(comps, candidate_mask(batch.history, batch.candidates, comps[0].shape[1]))
        valid, top, top_valid, X = self.features(batch, comps)
        B, n, F = X.shape
        X = X.reshape(B * n, F)
        flat = RankingData(X[:, self.columns], np.zeros(B * n, np.int8), np.repeat(np.arange(B), n),
                           batch.users.numpy(), top_valid.reshape(-1).numpy(), self.base_of(X))
        each = np.stack([m.predict(flat) for m in self.models])  # (K, B*n)
        preds = each.mean(0).reshape(B, n)
        if batch.phase == "valid":
            u = batch.users.numpy()
            fold = self.user_fold[u] if len(self.user_fold) else np.full(len(u), -1)
            for b in np.nonzero(fold >= 0)[0]:
                preds[b] = each[fold[b]].reshape(B, n)[b]
        preds = np.where(np.isfinite(preds), preds, -math.inf)
        return assemble(comps[self.retriever], valid, top, top_valid, torch.from_numpy(preds))

    def report(self) -> dict[str, Any]:
        return dict(self.info)
