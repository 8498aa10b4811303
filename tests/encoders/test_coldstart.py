"""Cold-start split: held-out items never reach training; ID baselines score them 0, text scorers rank them."""

from __future__ import annotations

import numpy as np
import torch

from llmrec.data.coldstart import cold_start_split
from llmrec.evaluation import evaluate
from llmrec.scorers import build_scorer
from llmrec.types import ScoreBatch, _ranges


def test_cold_items_never_in_training(shop_a):
    ds, _ = shop_a
    cs = cold_start_split(ds, frac=0.25, seed=3)
    assert len(cs.cold_items) == round(0.25 * ds.n_items)
    sp = cs.split
    users = np.arange(sp.n_users + 1)
    s, e = sp.history_bounds(users, "train")
    assert not np.isin(sp.items[_ranges(s, e)], cs.cold_items).any()
    assert not np.isin(sp.targets(sp.eval_users("valid"), "valid"), cs.cold_items).any()
    for h in sp.history_lists(cs.users, "test"):
        assert not np.isin(h, cs.cold_items).any()
    assert np.isin(sp.targets(cs.users, "test"), cs.cold_items).all() and len(cs.users) > 0
    again = cold_start_split(ds, frac=0.25, seed=3)
    assert np.array_equal(again.cold_items, cs.cold_items)


def test_id_baselines_cannot_rank_cold_items_text_can(tiny_model, shop_a):
    ds, _ = shop_a
    cs = cold_start_split(ds, frac=0.25, seed=3)
    cands = cs.candidates("full")
    assert cands.protocol == "coldstart:0.25:full" and set(cands.users) == set(cs.users)
    batch = ScoreBatch(torch.from_numpy(cs.users), torch.from_numpy(cs.split.history(cs.users, "test")), None)
    for name in ("pop", "itemknn"):
        sc = build_scorer(name)
        sc.fit(cs.dataset, cs.split)
        assert torch.all(sc.score(batch)[:, torch.from_numpy(cs.cold_items)] == 0)
    text = build_scorer(f"text:{tiny_model}")
    text.fit(cs.dataset, cs.split)
    cold_scores = text.score(batch)[:, torch.from_numpy(cs.cold_items)]
    assert cold_scores.abs().min() > 0 and len(torch.unique(cold_scores)) > 1
    res = evaluate(text, cs.dataset, cs.split, cands, progress=False)
    assert res.metrics["MRR"] > 0
