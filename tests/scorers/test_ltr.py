"""The `ltr` fusion: features equal their naive definitions, the cross-fit never scores a user with a combiner that
saw that user (instrumented with a memorising combiner), a feature the components lack is learned, determinism
under the seed, `evaluate --phase valid` reproduces the out-of-fold number, data without text or clock, the LLM
feature, configuration errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from llmrec.data import leave_one_out, load_dataset
from llmrec.data.candidates import make_candidates
from llmrec.errors import ConfigError
from llmrec.evaluation import evaluate
from llmrec.scorers import ScorerContext, build_scorer
from llmrec.scorers.base import SCORERS
from llmrec.scorers.hybrid import NEG, LTRConfig
from llmrec.scorers.ltr import (
    FeatureSpec,
    RankingData,
    assemble,
    assign_folds,
    candidate_features,
    cross_fit,
    has_global_clock,
    item_stats,
    top_columns,
)
from llmrec.types import ScoreBatch

SMALL = {"folds": 3, "inner_folds": 2, "min_data_in_leaf": 5, "num_leaves": 7, "max_rounds": 60,
         "early_stopping": 10}


def trending_folder(root, seed: int = 0, with_items: bool = False):
    """A data set where the answer is a feature no component has. 300 users watch 8 of 40 'old' items early on;
    their validation and test items are 2 of 10 'new' items, which only 30 other users watched, late and among
    themselves. Popularity ranks the old items first, item-kNN finds no co-occurrence between old and new (the
    new items tie at 0, last): both rank the targets at the bottom. Recency (and low popularity) point at them."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, 301):
        old = rng.choice(np.arange(1, 41), 8, replace=False)
        t = np.sort(rng.integers(0, 1000, 8))
        rows += [(f"u{u}", f"i{i}", int(ti)) for i, ti in zip(old, t)]
        new = rng.choice(np.arange(41, 51), 2, replace=False)
        rows += [(f"u{u}", f"i{new[0]}", 2000 + u), (f"u{u}", f"i{new[1]}", 2400 + u)]
    for u in range(301, 331):
        new = rng.choice(np.arange(41, 51), 7, replace=False)
        t = np.sort(rng.integers(1500, 1990, 7))
        rows += [(f"u{u}", f"i{i}", int(ti)) for i, ti in zip(new, t)]
    folder = root / f"trending{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id,item_id,timestamp"] + [f"{u},{i},{t}" for u, i, t in rows]
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    if with_items:
        (folder / "items.csv").write_text("item_id,title\n" + "".join(f"i{i},Item number {i}\n" for i in range(1, 51)))
    return folder


@pytest.fixture()
def trending(tmp_path, tmp_cache):
    ds = load_dataset(str(trending_folder(tmp_path)))
    return ds, leave_one_out(ds)


def _spec(tmp_path, name="h", **cfg) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return f"hybrid:{path}"


def _ltr(tmp_path, components=None, **ltr) -> str:
    comps = components or [{"name": "pop", "scorer": "pop"}, {"name": "knn", "scorer": "itemknn"}]
    return _spec(tmp_path, components=comps, fusion="ltr", ltr={**SMALL, **ltr})


def _ndcg(scorer, ds, split, phase="test") -> float:
    cands = make_candidates(ds, split, "full", phase, 0)
    return evaluate(scorer, ds, split, cands, progress=False).metrics["NDCG@10"]


# ------------------------------------------------------------------------------------------------ features


def test_item_stats_equal_the_naive_counts(trending):
    ds, split = trending
    stats = item_stats(split)
    count = np.zeros(ds.n_items + 1)
    last = np.full(ds.n_items + 1, -np.inf)
    t_end = -np.inf
    for u in range(1, split.n_users + 1):
        seq, ts = split.sequence(u), split.timestamps[split.indptr[u] : split.indptr[u + 1]]
        keep = len(seq) - (2 if len(seq) >= 3 else 1 if len(seq) == 2 else 0)  # the training part
        for i, t in zip(seq[:keep], ts[:keep]):
            count[i] += 1
            last[i] = max(last[i], t)
            t_end = max(t_end, t)
    assert np.allclose(stats.log_pop, np.log(1 + count))
    expect = np.where(count > 0, t_end - last, np.nan)
    assert np.allclose(stats.recency, expect, equal_nan=True)
    assert np.isnan(stats.recency[0])


def test_a_sequence_file_has_no_clock(tmp_path, fixtures):
    seq = load_dataset(str(fixtures / "sequences.txt"))
    assert not has_global_clock(leave_one_out(seq))
    assert item_stats(leave_one_out(seq)).recency is None
    csv = load_dataset(str(fixtures / "csv_folder"))
    assert has_global_clock(leave_one_out(csv))


def test_candidate_features_equal_the_naive_definitions():
    g = torch.Generator().manual_seed(0)
    B, N = 3, 12
    a = torch.randint(0, 5, (B, N + 1), generator=g).to(torch.float64)  # ties
    b = torch.randn(B, N + 1, generator=g, dtype=torch.float64)
    history = torch.tensor([[0, 3, 5], [1, 2, 4], [0, 0, 7]])
    valid = torch.ones(B, N + 1, dtype=torch.bool)
    valid[:, 0] = False
    for r, h in enumerate(history):
        valid[r, h[h > 0]] = False
    cols, cols_valid = top_columns(a, valid, 6)
    from llmrec.scorers.ltr import ItemStats

    stats = ItemStats(np.linspace(0, 3, N + 1), np.linspace(10, 0, N + 1))
    spec = FeatureSpec(["a", "b"], None, False, True, False)
    X = candidate_features(spec, stats, ScoreBatch(torch.arange(B), history, None), [a, b], valid, cols, cols_valid)
    assert spec.names == ["a:score", "a:rank", "a:z", "b:score", "b:rank", "b:z", "popularity", "recency",
                          "history_len"]
    for r in range(B):
        v = [j for j in range(N + 1) if valid[r, j]]
        for k, s in enumerate([a, b]):
            mean = np.mean([s[r, j].item() for j in v])
            sd = math.sqrt(np.mean([(s[r, j].item() - mean) ** 2 for j in v]))
            for c in range(cols.shape[1]):
                j = int(cols[r, c])
                assert X[r, c, 3 * k] == pytest.approx(s[r, j].item(), rel=1e-6)
                assert X[r, c, 3 * k + 1] == sum(1 for i in v if s[r, i] >= s[r, j])  # pessimistic rank
                assert X[r, c, 3 * k + 2] == pytest.approx((s[r, j].item() - mean) / sd, rel=1e-5, abs=1e-6)
                assert X[r, c, 6] == pytest.approx(stats.log_pop[j])
                assert X[r, c, 7] == pytest.approx(stats.recency[j])
                assert X[r, c, 8] == int((history[r] > 0).sum())
        # the top columns: best by `a` first, ties by the lower column, history never among them
        order = sorted(v, key=lambda j: (-a[r, j].item(), j))[:6]
        assert cols[r].tolist() == order


def test_assemble_puts_the_top_in_the_combiners_order_and_keeps_ties():
    retriever = torch.tensor([[5.0, 4.0, 3.0, 2.0, 2.0, 1.0]])
    valid = torch.tensor([[True, True, True, True, True, False]])
    top, top_valid = top_columns(retriever, valid, 3)
    assert top.tolist() == [[0, 1, 2]]
    out = assemble(retriever, valid, top, top_valid, torch.tensor([[0.1, 0.7, 0.7]]))
    s = out[0].tolist()
    assert s[1] == s[2] > s[0]  # the combiner's order, its tie kept
    assert s[0] > s[3] == s[4]  # every top column above the rest; the retriever's tie kept below
    assert s[5] == NEG


# ------------------------------------------------------------------------------------------------ cross-fit


class Memoriser:
    """A combiner that remembers each training user's positive row and scores it first whenever it sees that
    same (user, row) again; otherwise it follows the retriever (feature column 0, its z-score). Trained on a user, it
    ranks that user's validation target first: if the cross-fit ever let it score a user it saw, the validation
    NDCG would rise above the retriever's."""

    calls: list[Memoriser] = []

    def __init__(self, train: RankingData, cfg, seed):
        self.trained = set(train.users.tolist())
        self.memory = {(int(train.users[g]), x.tobytes()) for g, x, y in zip(train.group, train.X, train.y) if y}
        self.best_round = 1
        self.predicted: list[set[int]] = []
        Memoriser.calls.append(self)

    def predict(self, data: RankingData) -> np.ndarray:
        self.predicted.append(set(data.users.tolist()))
        hit = np.array([(int(data.users[g]), x.tobytes()) in self.memory for g, x in zip(data.group, data.X)])
        return np.where(hit, 1e6, data.X[:, 0].astype(np.float64))

    def importance(self) -> np.ndarray:
        return np.ones(1)


def test_the_cross_fit_never_scores_a_user_with_a_combiner_that_saw_it(trending, tmp_path):
    ds, split = trending
    Memoriser.calls = []
    h = build_scorer(_ltr(tmp_path, folds=4), ScorerContext(seed=0))
    h.bind_protocol("full")
    for s in h.components.values():
        s.fit(ds, split)
    h.fit_ltr(ds, split, "full", train_fn=Memoriser)
    cf = h.ltr.crossfit
    assert len(Memoriser.calls) == 4
    every = set(h.ltr.data.users.tolist())
    scored = [set(u.tolist()) for u in cf.scored_users]
    assert set().union(*scored) == every and sum(map(len, scored)) == len(every)  # a partition of the users
    for model, trained, held in zip(Memoriser.calls, cf.train_users, scored):
        assert model.trained == set(trained.tolist())
        assert not model.trained & held
        assert model.predicted[0] == held  # the out-of-fold call scored exactly its held-out fold
    rep = h.report()["ltr"]
    # nothing memorised was ever used: the out-of-fold NDCG is the retriever's own on the same users …
    assert rep["valid_NDCG@10_oof"] == pytest.approx(rep["valid_NDCG@10_retriever"], abs=1e-12)
    # … and so is what `evaluate` reports on the validation targets through `score` (per-user fold models)
    assert _ndcg(h, ds, split, "valid") == pytest.approx(rep["valid_NDCG@10_oof"], abs=1e-9)
    # positive control: a fold model scoring users it trained on finds their targets
    leak = h.ltr.data.take(np.nonzero(np.isin(h.ltr.data.users, cf.train_users[0]))[0], h.ltr.columns)
    assert (Memoriser.calls[0].predict(leak) >= 1e6).sum() == int(leak.y.sum()) > 0


def test_cross_fit_folds_partition_and_exclude():
    rng = np.random.default_rng(0)
    G, n = 40, 5
    X = rng.normal(size=(G * n, 3)).astype(np.float32)
    y = np.zeros(G * n, np.int8)
    y[np.arange(G) * n + rng.integers(0, n, G)] = 1
    data = RankingData(X, y, np.repeat(np.arange(G), n), np.arange(100, 100 + G), np.ones(G * n, bool))
    fold = assign_folds(G, 4, 7)
    assert np.bincount(fold).tolist() == [10, 10, 10, 10]
    assert np.array_equal(fold, assign_folds(G, 4, 7)) and not np.array_equal(fold, assign_folds(G, 4, 8))
    seen = []

    def spy(train, cfg, seed):
        seen.append(set(train.users.tolist()))
        return Memoriser(train, cfg, seed)

    cf = cross_fit(data, fold, LTRConfig(folds=4), 0, np.arange(3), spy)
    for k in range(4):
        assert seen[k] == set((100 + np.nonzero(fold != k)[0]).tolist())
        assert set(cf.scored_users[k].tolist()) == set((100 + np.nonzero(fold == k)[0]).tolist())
    assert (cf.oof < 1e6).all()  # no row scored by a model that memorised it


# ------------------------------------------------------------------------------------------------ learning


def test_ltr_learns_the_feature_that_holds_the_answer(trending, tmp_path):
    ds, split = trending
    comps = [{"name": "random", "scorer": "random"}, {"name": "knn", "scorer": "itemknn"}]
    h = build_scorer(_ltr(tmp_path, components=comps, top_n=60), ScorerContext(seed=0))
    h.bind_protocol("full")
    h.fit(ds, split)
    ltr = _ndcg(h, ds, split)
    singles = {n: _ndcg(s, ds, split) for n, s in h.components.items()}
    assert max(singles.values()) < 0.15  # random, and item-kNN that only knows the 30 users of new items
    assert ltr > 0.4 and ltr > max(singles.values()) + 0.3
    rep = h.report()["ltr"]
    assert rep["valid_NDCG@10_oof"] > 0.3 and rep["target_in_top_n"] == 1.0
    top_group = next(iter(rep["group_gain_share"]))
    assert top_group in ("recency", "popularity")
    assert rep["text_source"].startswith("none") and "text_sim" not in rep["features"]  # no items.csv: no text
    abl = h.ltr.ablation()
    assert set(abl) == {"all", "without components", "without popularity", "without recency", "without history"}


def test_ltr_is_deterministic_under_the_seed(trending, tmp_path):
    ds, split = trending
    spec = _ltr(tmp_path, top_n=60)
    outs, reps = [], []
    for _ in range(2):
        h = build_scorer(spec, ScorerContext(seed=3))
        h.bind_protocol("full")
        h.fit(ds, split)
        u = split.eval_users("test")[:50]
        outs.append(h.score(ScoreBatch(torch.from_numpy(u), torch.from_numpy(split.history(u, "test")), None)))
        rep = h.report()["ltr"]
        rep.pop("feature_seconds"), rep.pop("fit_seconds")
        reps.append(rep)
    assert torch.equal(outs[0], outs[1])
    assert reps[0] == reps[1]


def test_the_default_rounds_come_from_lightgbm_cv(trending, tmp_path):
    ds, split = trending
    h = build_scorer(_ltr(tmp_path, top_n=60, max_rounds=40), ScorerContext(seed=0))
    h.bind_protocol("full")
    h.fit(ds, split)
    rounds = h.report()["ltr"]["best_rounds"]
    assert len(rounds) == 3 and all(1 <= r <= 40 for r in rounds)


def test_injected_targets_train_but_are_never_served(trending, tmp_path):
    ds, split = trending
    # top_n 5: the retriever (pop) misses every new item, so every group needs its target added
    h = build_scorer(_ltr(tmp_path, top_n=5, inject_target=True), ScorerContext(seed=0))
    h.bind_protocol("full")
    h.fit(ds, split)
    rep = h.report()["ltr"]
    assert rep["injected_targets"] == rep["train_groups"] > 0 and rep["target_in_top_n"] == 0
    d = h.ltr.data
    assert (~d.served).sum() == rep["injected_targets"] and d.y[~d.served].all()
    assert rep["valid_NDCG@10_oof"] == rep["valid_NDCG@10_retriever"] == 0.0  # the served top 5 never held one
    with pytest.raises(Exception, match="no training user"):
        h2 = build_scorer(_ltr(tmp_path, top_n=5), ScorerContext(seed=0))
        h2.bind_protocol("full")
        h2.fit(ds, split)


# ------------------------------------------------------------------------------------------------ text, LLM, data


class FakeText:
    """A text scorer stand-in: similarity = minus the item id (no model download in tests)."""

    name = "fake-text"

    def fit(self, dataset, split):
        self.n = dataset.n_items

    def score(self, batch):
        items = torch.arange(self.n + 1)[None].expand(len(batch.users), -1) if batch.candidates is None \
            else batch.candidates
        return -items.to(torch.float64)


def test_a_text_component_provides_the_text_group(tmp_path, tmp_cache):
    ds = load_dataset(str(trending_folder(tmp_path, with_items=True)))
    split = leave_one_out(ds)
    SCORERS.add("test-text", lambda arg, ctx: FakeText(), "test only")
    try:
        comps = [{"name": "pop", "scorer": "pop"}, {"name": "knn", "scorer": "itemknn"},
                 {"name": "words", "scorer": "test-text"}]
        h = build_scorer(_ltr(tmp_path, components=comps, top_n=60, text="words"), ScorerContext(seed=0))
        h.bind_protocol("full")
        h.fit(ds, split)
        rep = h.report()["ltr"]
        assert rep["text_source"] == "component words"
        assert "text" in rep["groups"] and "words:z" in rep["features"]
        assert h.ltr.spec.groups[h.ltr.spec.names.index("words:score")] == "text"
        h2 = build_scorer(_ltr(tmp_path, components=comps, top_n=60, text="none"), ScorerContext(seed=0))
        h2.bind_protocol("full")
        h2.fit(ds, split)
        assert "text" not in h2.report()["ltr"]["groups"] and "words:z" in h2.report()["ltr"]["features"]
    finally:
        SCORERS._entries.pop("test-text")


def test_auto_text_uses_frozen_minilm_only_where_there_are_titles(tmp_path, tmp_cache, monkeypatch):
    import llmrec.scorers.ltr as ltr_mod

    built = []

    def fake_build(spec, ctx=None):
        built.append(spec)
        return FakeText()

    monkeypatch.setattr(ltr_mod, "build_scorer", fake_build)
    with_titles = load_dataset(str(trending_folder(tmp_path, seed=1, with_items=True)))
    h = build_scorer(_ltr(tmp_path, top_n=60), ScorerContext(seed=0))
    h.bind_protocol("full")
    h.fit(with_titles, leave_one_out(with_titles))
    rep = h.report()["ltr"]
    assert built == ["text:minilm"] and rep["text_source"] == "frozen text:minilm" and "text_sim" in rep["features"]
    # the feature is the text scorer's score of each served candidate
    u = leave_one_out(with_titles).eval_users("test")[:4]
    split = leave_one_out(with_titles)
    batch = ScoreBatch(torch.from_numpy(u), torch.from_numpy(split.history(u, "test")), None)
    comps = h._component_scores(batch)
    _, top, top_valid, X = h.ltr.features(batch, comps)
    col = h.ltr.spec.names.index("text_sim")
    assert np.array_equal(X[:, :, col], np.where(top_valid.numpy(), -top.numpy(), np.nan).astype(np.float32),
                          equal_nan=True)
    small = build_scorer(_ltr(tmp_path, top_n=60, text_max_items=10), ScorerContext(seed=0))
    small.bind_protocol("full")
    small.fit(with_titles, leave_one_out(with_titles))
    assert small.report()["ltr"]["text_source"].startswith("none (50 items")


class Lowest:
    """A stand-in LLM re-ranker: prefers lower item ids; counts the candidates it was shown."""

    name = "lowest"
    shown = 0

    def fit(self, dataset, split):
        pass

    def score(self, batch):
        Lowest.shown = max(Lowest.shown, batch.candidates.shape[1])
        return -batch.candidates.to(torch.float64)


def test_the_rerankers_score_is_a_feature_of_its_top_candidates(trending, tmp_path):
    ds, split = trending
    SCORERS.add("test-lowest", lambda arg, ctx: Lowest(), "test only")
    try:
        spec = _spec(tmp_path, components=[{"name": "pop", "scorer": "pop"}, {"name": "knn", "scorer": "itemknn"}],
                     fusion="ltr", ltr={**SMALL, "top_n": 50}, rerank={"scorer": "test-lowest", "top_n": 8})
        h = build_scorer(spec, ScorerContext(seed=0))
        h.bind_protocol("full")
        h.fit(ds, split)
        assert Lowest.shown == 8
        rep = h.report()["ltr"]
        assert "llm" in rep["groups"] and rep["llm_top"] == 8
        u = split.eval_users("test")[:5]
        batch = ScoreBatch(torch.from_numpy(u), torch.from_numpy(split.history(u, "test")), None, "test")
        _, top, _, X = h.ltr.features(batch, h._component_scores(batch))
        col = h.ltr.spec.names.index("llm_score")
        assert np.array_equal(X[:, :8, col], -top[:, :8].numpy().astype(np.float32))
        assert np.isnan(X[:, 8:, col]).all()
    finally:
        SCORERS._entries.pop("test-lowest")


def test_candidate_protocols_work(trending, tmp_path):
    ds, split = trending
    h = build_scorer(_ltr(tmp_path, top_n=20), ScorerContext(seed=0))
    h.bind_protocol("sampled:20")
    h.fit(ds, split)
    assert h.report()["ltr"]["valid_protocol"] == "sampled:20"
    valid = make_candidates(ds, split, "sampled:20", "valid", 0)
    res = evaluate(h, ds, split, valid, progress=False)
    assert res.metrics["NDCG@10"] == pytest.approx(h.report()["ltr"]["valid_NDCG@10_oof"], abs=1e-9)
    test = make_candidates(ds, split, "sampled:20", "test", 0)
    assert evaluate(h, ds, split, test, progress=False).metrics["NDCG@10"] > 0.3


def test_ltr_config_errors(tmp_path, tiny, tmp_cache):
    comps = [{"name": "a", "scorer": "pop"}, {"name": "b", "scorer": "itemknn"}]
    with pytest.raises(ConfigError, match="ltr.retriever 'c' is neither a component"):
        build_scorer(_spec(tmp_path, components=comps, fusion="ltr", ltr={"retriever": "c"}))
    with pytest.raises(ConfigError, match="unknown group 'words'"):
        build_scorer(_spec(tmp_path, components=comps, fusion="ltr", ltr={"groups": ["words"]}))
    with pytest.raises(ConfigError, match="folds must be ≥ 2"):
        build_scorer(_spec(tmp_path, components=comps, fusion="ltr", ltr={"folds": 1}))
    with pytest.raises(ConfigError, match="unknown key 'fold'"):
        build_scorer(_spec(tmp_path, components=comps, fusion="ltr", ltr={"fold": 3}))
    h = build_scorer(_spec(tmp_path, components=comps, fusion="ltr", ltr={"text": "wrods"}))
    with pytest.raises(ConfigError, match="ltr.text 'wrods'"):
        h.fit_ltr(*tiny, "full")
    with pytest.raises(RuntimeError, match="before fit"):
        h.score(ScoreBatch(torch.tensor([1]), torch.tensor([[1]]), None))


def test_a_fused_retriever_serves_the_top_of_that_fusion(trending, tmp_path):
    from llmrec.evaluation.metrics import candidate_mask
    from llmrec.scorers.hybrid import fuse

    ds, split = trending
    comps = [{"name": "pop", "scorer": "pop", "weight": 0.3}, {"name": "knn", "scorer": "itemknn"}]
    h = build_scorer(_ltr(tmp_path, components=comps, top_n=12, retriever="weighted"), ScorerContext(seed=0))
    h.bind_protocol("full")
    h.fit(ds, split)
    rep = h.report()["ltr"]
    assert rep["retriever"] == "weighted" and "weighted:z" in rep["features"]
    u = split.eval_users("test")[:6]
    batch = ScoreBatch(torch.from_numpy(u), torch.from_numpy(split.history(u, "test")), None)
    scores = h._component_scores(batch)
    valid = candidate_mask(batch.history, None, scores[0].shape[1])
    fused = fuse(scores, [0.3, 1.0], valid, "weighted")
    _, top, _, X = h.ltr.features(batch, scores)
    assert torch.equal(top, top_columns(fused, valid, 12)[0])
    out = h.score(batch)
    for r in range(len(u)):  # the served 12 on top, everything else in the fusion's order below them
        served = set(top[r].tolist())
        best = torch.topk(out[r], 12).indices.tolist()
        assert set(best) == served
