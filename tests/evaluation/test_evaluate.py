"""evaluate(): equal to a naive per-user loop, history masking, shapes, outputs."""

import json
import math

import numpy as np
import pytest
import torch

from llmrec.data.candidates import make_candidates
from llmrec.errors import LLMRecError
from llmrec.evaluation import evaluate
from llmrec.types import ScoreBatch


class TableScorer:
    """Scores from a fixed (U+1, N+1) table — lets the test compute the answer by hand."""

    name = "table"

    def __init__(self, table):
        self.table = torch.as_tensor(table, dtype=torch.float32)

    def fit(self, dataset, split):
        pass

    def score(self, batch: ScoreBatch):
        full = self.table[batch.users]
        return full if batch.candidates is None else full.gather(1, batch.candidates)


def naive_rank(scores_row, target, allowed):
    t = scores_row[target]
    return sum(1 for j in allowed if j != target and scores_row[j] >= t)


@pytest.mark.filterwarnings("ignore:protocol sampled")  # the tiny fixture's users have few unseen items
@pytest.mark.parametrize("protocol", ["full", "sampled:4"])
@pytest.mark.parametrize("phase", ["test", "valid"])
def test_evaluate_equals_naive_loop(tiny, protocol, phase):
    ds, split = tiny
    rng = np.random.default_rng(0)
    table = rng.integers(0, 4, (ds.n_users + 1, ds.n_items + 1)).astype(float)  # many ties
    cands = make_candidates(ds, split, protocol, phase, seed=3, use_cache=False)
    res = evaluate(TableScorer(table), ds, split, cands, ks=(1, 3), batch_size=2, progress=False)
    for i, (u, t) in enumerate(zip(cands.users, cands.targets)):
        if cands.items is None:
            seen = set(split.history_lists(np.array([u]), phase)[0].tolist())
            allowed = [j for j in range(1, ds.n_items + 1) if j not in seen or j == t]
        else:
            allowed = [j for j in cands.items[i] if j > 0]
        assert res.per_user["rank"].iloc[i] == naive_rank(table[u], t, allowed)
    ranks = res.per_user["rank"].to_numpy()
    assert res.metrics["HR@3"] == pytest.approx(np.mean(ranks < 3))


def test_history_is_masked_but_target_never(tiny):
    ds, split = tiny
    u = split.eval_users("test")[0]
    target = split.targets(np.array([u]), "test")[0]
    table = np.zeros((ds.n_users + 1, ds.n_items + 1))
    hist = split.history_lists(np.array([u]), "test")[0]
    table[u, hist] = 100.0  # a scorer that loves the history must not be rewarded or punished for it
    table[u, target] = 50.0
    cands = make_candidates(ds, split, "full", "test", use_cache=False).subset(np.array([0]))
    res = evaluate(TableScorer(table), ds, split, cands, progress=False)
    assert res.per_user["rank"].iloc[0] == 0


def test_missing_target_is_a_miss_and_nan_scores_rank_last(tiny):
    ds, split = tiny
    cands = make_candidates(ds, split, "sampled:3", "test", use_cache=False)
    cands.items = np.where(cands.items == cands.targets[:, None], 0, cands.items)  # drop every target
    res = evaluate(TableScorer(np.ones((ds.n_users + 1, ds.n_items + 1))), ds, split, cands, progress=False)
    assert np.isinf(res.per_user["rank"]).all() and res.metrics["HR@20"] == 0.0
    table = np.full((ds.n_users + 1, ds.n_items + 1), math.nan)
    with pytest.warns(UserWarning, match="NaN/inf"):
        res = evaluate(TableScorer(table), ds, split, make_candidates(ds, split, "full", use_cache=False),
                       progress=False)
    assert res.scorer_report["nonfinite_scores"] > 0


def test_wrong_shape_is_a_clear_error(tiny):
    ds, split = tiny

    class Bad(TableScorer):
        def score(self, batch):
            return torch.zeros(len(batch.users), 3)

    with pytest.raises(LLMRecError, match="returned shape"):
        evaluate(Bad(np.zeros((1, 1))), ds, split, make_candidates(ds, split, "full", use_cache=False),
                 progress=False)


def test_candidates_from_another_split_are_refused(tiny, fixtures):
    from llmrec.data import leave_one_out, load_dataset

    ds, split = tiny
    other = load_dataset(fixtures / "sequences.txt")
    cands = make_candidates(other, leave_one_out(other), "full", use_cache=False)
    cands.split_hash = "deadbeef"
    with pytest.raises(LLMRecError, match="built on split"):
        evaluate(TableScorer(np.zeros((7, 11))), ds, split, cands, progress=False)


def test_outputs_written(tiny, tmp_path):
    ds, split = tiny
    cands = make_candidates(ds, split, "sampled:3", use_cache=False)
    res = evaluate(TableScorer(np.zeros((ds.n_users + 1, ds.n_items + 1))), ds, split, cands, progress=False,
                   config={"scorer": "table"})
    res.save(tmp_path / "out")
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    for key in ("HR@10", "NDCG@10", "MRR", "n_users", "protocol", "candidates_hash", "split_hash"):
        assert key in m
    assert m["HR@1"] == 0.0  # constant scores: pessimistic ties
    assert "| HR@1 |" in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "per_user.csv.gz").is_file()
    assert json.loads((tmp_path / "out" / "config.json").read_text()) == {"scorer": "table"}
