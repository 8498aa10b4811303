"""Baseline scorers: every registered scorer scores both protocols; golden item-kNN; BPR learns."""

import numpy as np
import pytest
import torch

from llmrec.data.candidates import make_candidates
from llmrec.evaluation import evaluate
from llmrec.scorers import SCORERS, ScorerContext, build_scorer
from llmrec.types import ScoreBatch

BASELINES = ["random", "pop", "itemknn", "bpr"]


@pytest.mark.parametrize("name", BASELINES)
def test_full_and_candidate_scores_agree(tiny, name):
    ds, split = tiny
    scorer = build_scorer(name, ScorerContext(seed=0, options={"epochs": 2} if name == "bpr" else {}))
    scorer.fit(ds, split)
    users = split.eval_users("test")
    hist = torch.from_numpy(split.history(users, "test"))
    full = scorer.score(ScoreBatch(torch.from_numpy(users), hist, None))
    assert full.shape == (len(users), ds.n_items + 1)
    cands = torch.from_numpy(make_candidates(ds, split, "sampled:3", use_cache=False).items)
    sub = scorer.score(ScoreBatch(torch.from_numpy(users), hist, cands))
    assert torch.allclose(sub, full.gather(1, cands), atol=1e-5)


def test_every_baseline_is_registered_with_help():
    assert set(BASELINES) <= set(SCORERS.names())
    assert all(SCORERS.help(n) for n in BASELINES)


def test_random_is_deterministic_and_independent_of_batching(tiny):
    ds, split = tiny
    a, b = build_scorer("random", ScorerContext(seed=5)), build_scorer("random", ScorerContext(seed=5))
    a.fit(ds, split)
    b.fit(ds, split)
    users = torch.arange(1, ds.n_users + 1)
    hist = torch.zeros(len(users), 1, dtype=torch.long)
    whole = a.score(ScoreBatch(users, hist, None))
    parts = torch.cat([b.score(ScoreBatch(users[i : i + 2], hist[i : i + 2], None)) for i in range(0, len(users), 2)])
    assert torch.equal(whole, parts)
    c = build_scorer("random", ScorerContext(seed=6))
    c.fit(ds, split)
    assert not torch.equal(whole, c.score(ScoreBatch(users, hist, None)))


def test_itemknn_matches_dense_formula(tiny):
    ds, split = tiny
    X = split.train_matrix("train").toarray()
    co = X.T @ X
    np.fill_diagonal(co, 0)
    deg = X.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = np.nan_to_num(co / np.sqrt(np.outer(deg, deg)))
    scorer = build_scorer("itemknn")
    scorer.fit(ds, split)
    users = split.eval_users("test")
    hist = split.history(users, "test")
    H = np.zeros((len(users), ds.n_items + 1))
    for r, row in enumerate(hist):
        H[r, row[row > 0]] = 1
    expect = H @ sim
    got = scorer.score(ScoreBatch(torch.from_numpy(users), torch.from_numpy(hist), None)).numpy()
    assert np.allclose(got, expect, atol=1e-5)


def test_popularity_counts_training_interactions_only(tiny):
    ds, split = tiny
    scorer = build_scorer("pop")
    scorer.fit(ds, split)
    counts = np.zeros(ds.n_items + 1)
    for u in range(1, ds.n_users + 1):
        for i in split.history_lists(np.array([u]), "train")[0]:
            counts[i] += 1
    assert np.array_equal(scorer.counts.numpy(), counts)


def test_bpr_beats_random_on_ml100k(shared_data):
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset("ml-100k", shared_data)
    split = leave_one_out(ds)
    cands = make_candidates(ds, split, "sampled:100", use_cache=False)
    bpr = build_scorer("bpr", ScorerContext(seed=0, options={"epochs": 5}))
    bpr.fit(ds, split)
    rnd = build_scorer("random")
    rnd.fit(ds, split)
    auc_bpr = evaluate(bpr, ds, split, cands, progress=False).metrics["AUC"]
    auc_rnd = evaluate(rnd, ds, split, cands, progress=False).metrics["AUC"]
    assert auc_bpr > 0.8 > 0.6 > auc_rnd > 0.4
