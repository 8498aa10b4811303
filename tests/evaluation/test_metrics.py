"""Golden values for the ranking metrics, ties included, and AUC against scikit-learn."""

import math

import numpy as np
import pytest
import torch

from llmrec.evaluation.metrics import auc_binary, macro_auc, metrics_from_ranks, pessimistic_ranks


def test_ties_are_broken_pessimistically():
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.5, 2.0, 0.5, 0.1], [3.0, 1.0, 2.0, 3.0]])
    target = torch.tensor([0, 0, 0])
    ranks = pessimistic_ranks(scores, target)
    # row 0: constant scores -> last (3); row 1: one higher, one tie -> 2; row 2: one tie -> 1
    assert ranks.tolist() == [3.0, 2.0, 1.0]


def test_constant_scorer_gets_hr1_zero():
    scores = torch.zeros(5, 10)
    ranks = pessimistic_ranks(scores, torch.arange(5))
    m = metrics_from_ranks(ranks.numpy(), ks=(1, 10))
    assert m["HR@1"] == 0.0
    assert m["HR@10"] == 1.0  # rank 9 < 10
    assert m["NDCG@10"] == pytest.approx(1 / math.log2(11))


def test_invalid_columns_do_not_count_and_missing_target_is_a_miss():
    scores = torch.tensor([[0.1, 5.0, 5.0, 0.2], [1.0, 2.0, 3.0, 4.0]])
    valid = torch.tensor([[True, False, False, True], [True, True, True, True]])
    ranks = pessimistic_ranks(scores, torch.tensor([3, -1]), valid)
    assert ranks[0].item() == 0.0  # the two high scores are masked
    assert math.isinf(ranks[1].item())


def test_golden_metric_values():
    ranks = np.array([0.0, 1.0, 4.0, 9.0, 10.0, math.inf])
    m = metrics_from_ranks(ranks, ks=(1, 5, 10), n_negatives=np.array([10, 10, 10, 10, 10, 10]))
    assert m["HR@1"] == pytest.approx(1 / 6)
    assert m["HR@5"] == pytest.approx(3 / 6)
    assert m["HR@10"] == pytest.approx(4 / 6)
    ndcg10 = (1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11)) / 6
    assert m["NDCG@10"] == pytest.approx(ndcg10)
    assert m["MRR"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10 + 1 / 11 + 0) / 6)
    assert m["AUC"] == pytest.approx((1 + 0.9 + 0.6 + 0.1 + 0.0 + 0.0) / 6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, 200).astype(float)  # many ties
    labels = rng.random(200) < 0.3
    assert auc_binary(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_macro_auc_and_errors():
    probs = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    assert macro_auc(probs, np.array([0, 1, 0, 1])) == 1.0
    with pytest.raises(ValueError):
        auc_binary(np.array([1.0, 2.0]), np.array([1, 1]))


def test_metric_by_target_position_matches_a_naive_split():
    from llmrec.evaluation.metrics import metric_by_target_position, per_user_metric

    rng = np.random.default_rng(3)
    n, c = 500, 20
    pos = rng.integers(-1, c, n)
    ranks = rng.integers(0, c, n).astype(float)
    ranks[rng.random(n) < 0.1] = np.inf
    for n_bins in (1, 3, 5, 20):
        out = metric_by_target_position(ranks, pos, c, "NDCG@10", n_bins)
        assert [b["first"] for b in out][0] == 1 and out[-1]["last"] == c
        covered = [p for b in out for p in range(b["first"] - 1, b["last"])]
        assert covered == list(range(c))  # the bins partition the positions, in order
        v = per_user_metric(ranks, "NDCG@10")
        for b in out:
            sel = (pos >= b["first"] - 1) & (pos <= b["last"] - 1)
            assert b["users"] == sel.sum()
            assert b["NDCG@10"] == pytest.approx(v[sel].mean())
    assert sum(b["users"] for b in metric_by_target_position(ranks, pos, c)) == (pos >= 0).sum()


def test_metric_by_target_position_shows_a_first_letter_bias():
    from llmrec.evaluation.metrics import metric_by_target_position

    pos = np.arange(20).repeat(5)
    ranks = np.where(pos == 0, 0.0, pos.astype(float))  # always picks "A": the target at A is ranked first
    out = metric_by_target_position(ranks, pos, 20, "HR@1", 4)
    assert [(b["first"], b["last"]) for b in out] == [(1, 5), (6, 10), (11, 15), (16, 20)]
    assert [b["HR@1"] for b in out] == [pytest.approx(0.2), 0.0, 0.0, 0.0]


def test_metric_by_target_position_refuses_bad_input():
    from llmrec.errors import LLMRecError
    from llmrec.evaluation.metrics import metric_by_target_position

    with pytest.raises(LLMRecError, match="shape"):
        metric_by_target_position(np.zeros(3), np.zeros(4, dtype=int), 20)
    with pytest.raises(LLMRecError, match="n_bins"):
        metric_by_target_position(np.zeros(3), np.zeros(3, dtype=int), 3, n_bins=4)
    with pytest.raises(LLMRecError, match="≥ n_candidates"):
        metric_by_target_position(np.zeros(3), np.array([0, 1, 3]), 3, n_bins=3)
    out = metric_by_target_position(np.zeros(2), np.array([0, 0]), 10, n_bins=2)
    assert out[1]["HR@1"] is None and out[1]["users"] == 0
