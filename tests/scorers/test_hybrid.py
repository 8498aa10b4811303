"""Hybrid fusion: golden arithmetic for RRF (pessimistic ranks of ties) and z-score fusion, masking, learned weights
(their validation NDCG is what `evaluate` reports, repeat consumption included), two-stage re-ranking."""

import math

import numpy as np
import pytest
import torch
import yaml

from llmrec.errors import ConfigError
from llmrec.scorers import ScorerContext, build_scorer
from llmrec.scorers.base import SCORERS
from llmrec.scorers.hybrid import NEG, fuse, rank_lexicographic, rank_within, simplex_grid, zscore
from llmrec.types import ScoreBatch


def test_rrf_golden():
    a = torch.tensor([[3.0, 2.0, 1.0]])
    b = torch.tensor([[1.0, 3.0, 2.0]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    out = fuse([a, b], [1.0, 1.0], valid, "rrf", rrf_k=60)
    # ranks a: 1,2,3; b: 3,1,2
    expect = [1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 63 + 1 / 62]
    assert out[0].tolist() == pytest.approx(expect)
    out_w = fuse([a, b], [2.0, 0.0], valid, "rrf", rrf_k=1)
    assert out_w[0].tolist() == pytest.approx([2 / 2, 2 / 3, 2 / 4])


def test_weighted_zscore_golden_and_masking():
    a = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    valid = torch.tensor([[True, True, True, False]])  # the 100 is masked (history/padding): it must not count
    z = zscore(a, valid)
    sd = math.sqrt(2 / 3)
    assert z[0, :3].tolist() == pytest.approx([-1 / sd, 0.0, 1 / sd])
    assert z[0, 3] == 0
    out = fuse([a, -a], [0.75, 0.25], valid, "weighted")
    assert out[0, :3].tolist() == pytest.approx([-0.5 / sd, 0.0, 0.5 / sd])
    assert out[0, 3].item() == NEG


def test_rank_within_invalid_last():
    s = torch.tensor([[0.5, 0.9, 0.1, 0.7]])
    valid = torch.tensor([[True, True, False, True]])
    assert rank_within(s, valid)[0].tolist() == [3.0, 1.0, 5.0, 2.0]


def test_rank_within_ties_share_the_worst_rank():
    s = torch.tensor([[0.5, 0.9, 0.5, 0.7, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0], [2.0, -torch.inf, 3.0, torch.nan, 0.0]])
    valid = torch.tensor([[True] * 5, [True, True, True, False, True], [True, True, True, True, False]])
    assert rank_within(s, valid).tolist() == [
        [5.0, 1.0, 5.0, 2.0, 5.0],  # three tied at 0.5 all take rank 5
        [4.0, 4.0, 4.0, 6.0, 4.0],  # constant: every valid column the last rank (4 valid)
        [2.0, 4.0, 1.0, 4.0, 6.0],  # -inf and NaN: tied last among the valid
    ]


def test_rank_within_equals_the_naive_count():
    g = torch.Generator().manual_seed(0)
    s = torch.randint(0, 4, (6, 9), generator=g).to(torch.float64)  # many ties
    valid = torch.rand(6, 9, generator=g) > 0.3
    naive = torch.full((6, 9), 10.0, dtype=torch.float64)
    for b in range(6):
        for i in range(9):
            if valid[b, i]:
                naive[b, i] = float(((s[b] >= s[b, i]) & valid[b]).sum())
    assert torch.equal(rank_within(s, valid), naive)
    assert torch.equal(rank_lexicographic(s, torch.zeros_like(s), valid), naive)


def test_rrf_constant_component_favours_no_candidate():
    const = torch.ones(1, 4)
    a = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    alone = fuse([const], [1.0], valid, "rrf", rrf_k=60)
    assert alone[0].tolist() == [1 / 64] * 4
    both = fuse([a, const], [1.0, 1.0], valid, "rrf", rrf_k=60)
    assert both[0].tolist() == pytest.approx([1 / 61 + 1 / 64, 1 / 62 + 1 / 64, 1 / 63 + 1 / 64, 1 / 64 + 1 / 64])


def test_simplex_grid():
    g = simplex_grid(3, 0.5)
    assert sorted(g) == sorted([(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)])
    assert all(sum(w) == pytest.approx(1.0) for w in simplex_grid(4, 0.1))


def _config(tmp_path, **cfg):
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return f"hybrid:{path}"


def test_hybrid_scorer_full_and_candidates(tiny, tmp_path):
    ds, split = tiny
    spec = _config(tmp_path, components=[{"name": "pop", "scorer": "pop"}, {"name": "knn", "scorer": "itemknn"}],
                   fusion="rrf")
    h = build_scorer(spec)
    h.fit(ds, split)
    users = split.eval_users("test")
    hist = torch.from_numpy(split.history(users, "test"))
    full = h.score(ScoreBatch(torch.from_numpy(users), hist, None))
    assert full.shape == (len(users), ds.n_items + 1)
    # history items and padding are excluded from fusion
    for r, row in enumerate(hist):
        assert (full[r, row[row > 0]] == NEG).all()
    assert set(h.last_components) == {"pop", "knn"}


def test_learned_weights_use_validation_only(tiny, tmp_path):
    ds, split = tiny
    spec = _config(tmp_path, components=[{"name": "pop", "scorer": "pop"}, {"name": "knn", "scorer": "itemknn"}],
                   fusion="learned", grid_step=0.5)
    h = build_scorer(spec)
    h.bind_protocol("sampled:3")
    h.fit(ds, split)
    assert h.learned["valid_protocol"] == "sampled:3"
    assert h.learned["grid_points"] == 3
    assert sum(h.weights) == pytest.approx(1.0)
    assert h.learned["valid_NDCG@10"] >= max(h.learned["valid_NDCG@10_single"].values())


def test_learned_validation_ndcg_is_what_evaluate_reports(tmp_path, tmp_cache):
    """Repeat consumption: every validation target is already in its user's history. `score` cannot know the
    target, so it excludes the history (the target with it) and the hybrid ranks the target last; the weights'
    validation NDCG must be the one `evaluate` then reports for the hybrid, not one computed with the target
    left in the fusion."""
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates
    from llmrec.evaluation import evaluate

    seqs = tmp_path / "repeat.txt"
    rows = [[1, 2, 3, 1, 4], [5, 6, 7, 5, 8], [2, 9, 10, 9, 1], [3, 11, 12, 3, 6], [4, 8, 9, 10, 4, 2],
            [6, 7, 11, 12, 5], [1, 5, 9, 11, 3], [2, 4, 6, 8, 10, 12]]
    seqs.write_text("".join(f"{u} " + " ".join(map(str, r)) + "\n" for u, r in enumerate(rows, 1)))
    ds = load_dataset(str(seqs))
    split = leave_one_out(ds)
    spec = _config(tmp_path, components=[{"name": "pop", "scorer": "pop"}, {"name": "knn", "scorer": "itemknn"}],
                   fusion="learned", grid_step=0.5)
    h = build_scorer(spec)
    h.bind_protocol("full")
    h.fit(ds, split)
    valid_cands = make_candidates(ds, split, "full", "valid", 0)
    hist = split.history(valid_cands.users, "valid")
    assert any(t in row for t, row in zip(valid_cands.targets, hist))  # repeats are in the data
    for name, learned in h.learned["valid_NDCG@10_single"].items():
        h.weights = [1.0 if n == name else 0.0 for n in h.components]
        res = evaluate(h, ds, split, valid_cands, progress=False)
        assert learned == pytest.approx(res.metrics["NDCG@10"], abs=1e-9), name


class Reverse:
    """A stand-in re-ranker preferring lower item ids (so the second stage visibly changes the order)."""

    name = "reverse"

    def fit(self, dataset, split):
        pass

    def score(self, batch):
        assert batch.candidates is not None and batch.candidates.shape[1] == 3
        return -batch.candidates.to(torch.float64)


def test_two_stage_rerank_reorders_only_the_top_n(tiny, tmp_path, monkeypatch):
    ds, split = tiny
    SCORERS.add("test-reverse", lambda arg, ctx: Reverse(), "test only")
    try:
        spec = _config(tmp_path, components=[{"name": "pop", "scorer": "pop"}], fusion="weighted",
                       rerank={"scorer": "test-reverse", "top_n": 3})
        h = build_scorer(spec)
        h.fit(ds, split)
        u = split.eval_users("test")[:2]
        hist = torch.from_numpy(split.history(u, "test"))
        out = h.score(ScoreBatch(torch.from_numpy(u), hist, None))
        first = h.last_first_stage
        for r in range(len(u)):
            top3 = torch.topk(first[r], 3).indices
            final_top3 = torch.topk(out[r], 3).indices
            assert set(top3.tolist()) == set(final_top3.tolist())  # the same 3 items on top …
            assert final_top3.tolist() == sorted(top3.tolist())  # … in the re-ranker's order
            rest = torch.ones_like(out[r], dtype=torch.bool)
            rest[top3] = False
            assert torch.equal(torch.argsort(out[r][rest], stable=True), torch.argsort(first[r][rest], stable=True))
    finally:
        SCORERS._entries.pop("test-reverse")


class Constant:
    """A re-ranker with no opinion: every candidate the same score."""

    name = "constant"

    def fit(self, dataset, split):
        pass

    def score(self, batch):
        return torch.zeros(batch.candidates.shape, dtype=torch.float64)


def test_rerank_ties_keep_the_first_stage_order_and_full_ties_stay_tied(tiny, tmp_path):
    ds, split = tiny
    SCORERS.add("test-constant", lambda arg, ctx: Constant(), "test only")
    try:
        spec = _config(tmp_path, components=[{"name": "pop", "scorer": "pop"}], fusion="weighted",
                       rerank={"scorer": "test-constant", "top_n": 4})
        h = build_scorer(spec)
        h.fit(ds, split)
        u = split.eval_users("test")[:2]
        hist = torch.from_numpy(split.history(u, "test"))
        out = h.score(ScoreBatch(torch.from_numpy(u), hist, None))
        first = h.last_first_stage
        for r in range(len(u)):
            top = torch.topk(first[r], 4).indices
            # the re-ranker ties everything: the top 4 keep the first stage's order, and equal first-stage
            # scores stay equal (no free order from the column position)
            assert torch.equal(rank_within(out[r : r + 1, top], torch.ones(1, 4, dtype=torch.bool)),
                               rank_within(first[r : r + 1, top], torch.ones(1, 4, dtype=torch.bool)))
    finally:
        SCORERS._entries.pop("test-constant")
    p = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    q = torch.tensor([[0.5, 0.5, 0.2, 9.0]])
    assert rank_lexicographic(p, q, torch.ones(1, 4, dtype=torch.bool)).tolist() == [[2.0, 2.0, 3.0, 4.0]]


def test_bad_configs(tmp_path):
    with pytest.raises(ConfigError, match="needs a config"):
        build_scorer("hybrid")
    with pytest.raises(ConfigError, match="fusion must be"):
        build_scorer(_config(tmp_path, components=[{"name": "a", "scorer": "pop"}], fusion="max"))
    with pytest.raises(ConfigError, match="unknown key 'weigth'"):
        build_scorer(_config(tmp_path, components=[{"name": "a", "scorer": "pop", "weigth": 1}]))
    with pytest.raises(ConfigError, match="unique"):
        build_scorer(_config(tmp_path, components=[{"name": "a", "scorer": "pop"}, {"name": "a", "scorer": "pop"}]))


def test_context_options_override_config(tiny, tmp_path):
    spec = _config(tmp_path, components=[{"name": "a", "scorer": "pop"}, {"name": "b", "scorer": "itemknn"}])
    h = build_scorer(spec, ScorerContext(options={"fusion": "weighted"}))
    assert h.cfg.fusion == "weighted"
    assert np.isclose(sum(h.weights), 2.0)


def test_place_reranked_mix_golden():
    from llmrec.scorers.hybrid import place_reranked

    fused = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0]], dtype=torch.float64)
    top = torch.tensor([[0, 1, 2]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    second = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)  # the re-ranker reverses the first stage

    def order(mix):
        out = place_reranked(fused, top, valid, second, mix)
        return torch.argsort(out[0], descending=True, stable=True).tolist()

    assert order(None) == [2, 1, 0, 3, 4]  # the re-ranker's order alone (LlamaRec)
    assert order(1.0) == [2, 1, 0, 3, 4]
    assert order(0.0) == [0, 1, 2, 3, 4]  # the first stage's order
    # λ = 0.5: z(first) = -z(second), every blend is 0 -> ties broken by the first stage
    assert order(0.5) == [0, 1, 2, 3, 4]
    assert order(0.6) == [2, 1, 0, 3, 4]  # 0.4·z1 + 0.6·z2 favours the re-ranker
    # an unnamed (-inf) re-ranker score sinks below the named ones instead of poisoning the z-scores
    inf_second = torch.tensor([[0.0, -torch.inf, 2.0]], dtype=torch.float64)
    out = place_reranked(fused, top, valid, inf_second, 0.9)
    assert torch.argsort(out[0], descending=True, stable=True).tolist() == [2, 0, 1, 3, 4]


class TargetOracle:
    """A re-ranker that knows each user's validation target (sign +1) or avoids it (sign -1); test only."""

    name = "oracle"

    def __init__(self, targets: dict[int, int], sign: float) -> None:
        self.targets, self.sign = targets, sign

    def fit(self, dataset, split):
        pass

    def score(self, batch):
        assert batch.phase == "valid", "learn_mix must only read validation"
        t = torch.tensor([self.targets[int(u)] for u in batch.users])
        return self.sign * (batch.candidates == t[:, None]).to(torch.float64)


@pytest.mark.parametrize("sign,expected", [(1.0, 1.0), (-1.0, 0.0), (0.0, 0.0)])
def test_rerank_mix_learned_on_validation(tiny, tmp_path, sign, expected):
    from llmrec.data.candidates import make_candidates
    from llmrec.evaluation import evaluate

    ds, split = tiny
    valid = make_candidates(ds, split, "full", "valid", 0)
    targets = dict(zip(valid.users.tolist(), valid.targets.tolist()))
    SCORERS.add("test-oracle", lambda arg, ctx: TargetOracle(targets, sign), "test only")
    try:
        spec = _config(tmp_path, components=[{"name": "pop", "scorer": "pop"}], fusion="weighted",
                       rerank={"scorer": "test-oracle", "top_n": 5, "mix": "learn", "mix_users": 10_000})
        h = build_scorer(spec)
        h.bind_protocol("full")
        h.fit(ds, split)
        learned = h.mix_learned
        assert learned["valid_users"] == len(valid.users)
        curve = learned["valid_NDCG@10_by_mix"]
        assert curve[h.mix] == max(curve.values()) and learned["valid_NDCG@10"] == curve[h.mix]
        assert all(curve[lam] < curve[h.mix] for lam in curve if lam < h.mix)  # ties go to the smaller λ
        assert h.report()["rerank"]["mix"] == h.mix
        if sign > 0:  # an oracle earns weight and reaches its own ceiling
            assert h.mix > 0 and curve[1.0] == curve[h.mix] > curve[0.0]
        else:  # an anti-oracle or no opinion earns none
            assert h.mix == expected
        # the curve is what evaluate reports for that λ on the same validation users (same masking)
        for lam in (0.0, 0.5, 1.0):
            h.mix = lam
            res = evaluate(h, ds, split, valid, progress=False)
            assert curve[lam] == pytest.approx(res.metrics["NDCG@10"], abs=1e-9), lam
    finally:
        SCORERS._entries.pop("test-oracle")


@pytest.mark.parametrize("mix", ["abc", 1.5, -0.1, True])
def test_rerank_mix_bad_values(tmp_path, mix):
    with pytest.raises(ConfigError, match="rerank.mix"):
        build_scorer(_config(tmp_path, components=[{"name": "a", "scorer": "pop"}],
                             rerank={"scorer": "pop", "mix": mix}))


def test_rerank_mix_is_refused_under_ltr(tmp_path):
    with pytest.raises(ConfigError, match="rerank.mix blends a last stage"):
        build_scorer(_config(tmp_path, components=[{"name": "a", "scorer": "pop"}], fusion="ltr",
                             rerank={"scorer": "pop", "mix": "learn"}))
