"""Hybrid fusion: golden arithmetic for RRF and z-score fusion, masking, learned weights, two-stage re-ranking."""

import math

import numpy as np
import pytest
import torch
import yaml

from llmrec.errors import ConfigError
from llmrec.scorers import ScorerContext, build_scorer
from llmrec.scorers.base import SCORERS
from llmrec.scorers.hybrid import NEG, fuse, rank_within, simplex_grid, zscore
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
