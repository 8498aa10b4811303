"""Augmentations keep their invariants row by row; CoSeRec's memory-based correlation equals its formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llmrec.objectives import augment
from llmrec.objectives.coserec import memory_correlation, model_correlation

from .conftest import N_ITEMS, tiny_split

SEQ = torch.tensor(
    [
        [0, 0, 0, 0, 0, 0, 0, 5],
        [0, 0, 0, 1, 2, 3, 4, 5],
        [1, 2, 3, 4, 5, 6, 7, 8],
        [0, 0, 0, 0, 0, 0, 9, 10],
    ]
)


def items(row: torch.Tensor) -> list[int]:
    return [int(x) for x in row if x != 0]


def is_left_padded(row: torch.Tensor) -> bool:
    nz = (row != 0).nonzero()
    return len(nz) == 0 or bool((row[int(nz[0]) :] != 0).all())


@pytest.mark.parametrize("seed", range(5))
def test_crop_is_a_contiguous_subsequence(seed):
    out = augment.crop(SEQ, 0.6, torch.Generator().manual_seed(seed))
    for r in range(len(SEQ)):
        src, got = items(SEQ[r]), items(out[r])
        assert is_left_padded(out[r])
        assert len(got) == max(1, math.floor(0.6 * len(src)))
        assert any(src[i : i + len(got)] == got for i in range(len(src)))


@pytest.mark.parametrize("seed", range(5))
def test_mask_masks_floor_gamma_len_items(seed):
    out = augment.mask(SEQ, 0.5, 99, torch.Generator().manual_seed(seed))
    for r in range(len(SEQ)):
        n = len(items(SEQ[r]))
        assert int((out[r] == 99).sum()) == math.floor(0.5 * n)
        keep = out[r] != 99
        assert torch.equal(out[r][keep], SEQ[r][keep])


@pytest.mark.parametrize("seed", range(5))
def test_reorder_shuffles_one_contiguous_block(seed):
    out = augment.reorder(SEQ, 0.6, torch.Generator().manual_seed(seed))
    for r in range(len(SEQ)):
        src, got = items(SEQ[r]), items(out[r])
        assert sorted(src) == sorted(got) and is_left_padded(out[r])
        diff = [i for i in range(len(src)) if src[i] != got[i]]
        if diff:
            lo, hi = min(diff), max(diff)
            assert hi - lo + 1 <= math.floor(0.6 * len(src))
            assert sorted(src[lo : hi + 1]) == sorted(got[lo : hi + 1])


def correlated_table() -> torch.Tensor:
    table = torch.zeros(N_ITEMS + 2, 2, dtype=torch.long)
    for i in range(1, N_ITEMS + 1):
        table[i] = torch.tensor([i % N_ITEMS + 1, (i + 1) % N_ITEMS + 1])
    return table


@pytest.mark.parametrize("seed", range(5))
def test_substitute_replaces_items_by_correlated_ones(seed):
    seq = SEQ.clamp(max=N_ITEMS)
    table = correlated_table()
    out = augment.substitute(seq, 0.3, table, torch.Generator().manual_seed(seed))
    for r in range(len(seq)):
        n = len(items(seq[r]))
        changed = (out[r] != seq[r]).nonzero().flatten().tolist()
        assert len(changed) == max(1, math.floor(0.3 * n))
        for j in changed:
            assert int(out[r, j]) in table[int(seq[r, j])].tolist()


@pytest.mark.parametrize("seed", range(5))
def test_insert_adds_correlated_items_before_chosen_ones(seed):
    seq = SEQ.clamp(max=N_ITEMS)
    table = correlated_table()
    out = augment.insert(seq, 0.3, table, torch.Generator().manual_seed(seed))
    for r in range(len(seq)):
        src, got = items(seq[r]), items(out[r])
        assert is_left_padded(out[r])
        k = max(1, math.floor(0.3 * len(src)))
        assert len(got) == min(len(src) + k, seq.shape[1])
        # walk from the right: every extra item sits just before the item it correlates with
        i, j = len(src) - 1, len(got) - 1
        while j >= 0 and i >= 0:
            assert got[j] == src[i]
            if j > 0 and i > 0 and got[j - 1] != src[i - 1] or (i == 0 and j > 0):
                assert got[j - 1] in table[src[i]].tolist()
                j -= 1
            i, j = i - 1, j - 1


def test_random_augment_is_seeded_and_uses_short_ops_for_short_rows():
    kw = dict(mask_token=99, correlated=correlated_table(), short_ops=("substitute",), short_len=1)
    seq = SEQ.clamp(max=N_ITEMS)
    a = augment.random_augment(seq, ("crop", "mask", "reorder"), torch.Generator().manual_seed(0), **kw)
    b = augment.random_augment(seq, ("crop", "mask", "reorder"), torch.Generator().manual_seed(0), **kw)
    assert torch.equal(a, b)
    assert int(a[0, -1]) in correlated_table()[5].tolist()  # the 1-item row was substituted


def test_memory_correlation_equals_the_formula():
    split = tiny_split(seed=1, n_users=8)
    corr = memory_correlation(split, top_k=3)
    got = corr.ids
    X = split.train_matrix("train").toarray() > 0  # (U+1, N+1)
    n_u, n_i = X.sum(1), X.sum(0)
    N = split.n_items
    cor = np.zeros((N + 1, N + 1))
    for i in range(1, N + 1):
        for j in range(1, N + 1):
            if i == j or n_i[i] == 0 or n_i[j] == 0:
                continue
            both = np.nonzero(X[:, i] & X[:, j])[0]
            cor[i, j] = sum(1 / math.log(1 + n_u[u]) for u in both) / math.sqrt(n_i[i] * n_i[j])
    assert got.shape == (N + 2, 3)
    for i in range(1, N + 1):
        best = cor[i].max()
        if best > 0:
            assert cor[i, int(got[i, 0])] == pytest.approx(best)
            vals = [cor[i, int(j)] for j in got[i] if j > 0]
            assert vals == sorted(vals, reverse=True)
            assert corr.scores[i, : len(vals)].tolist() == pytest.approx(vals)
        else:
            assert (got[i] == 0).all()
    assert (got[0] == 0).all() and (got[N + 1] == 0).all()
    positive = cor[cor > 0]
    assert (corr.lo, corr.hi) == pytest.approx((positive.min(), positive.max()))


def test_model_correlation_is_the_nearest_by_dot_product():
    torch.manual_seed(0)
    E = torch.randn(7, 4)
    corr = model_correlation(E, top_k=2, chunk=3)
    off = ~torch.eye(7, dtype=torch.bool)
    for i in range(7):
        sc = E[i] @ E.T
        sc[i] = -math.inf
        assert corr.ids[i + 1].tolist() == (sc.topk(2).indices + 1).tolist()
        assert corr.scores[i + 1].tolist() == pytest.approx(sc.topk(2).values.tolist(), rel=1e-5)
    assert (corr.lo, corr.hi) == pytest.approx(((E @ E.T)[off].min().item(), (E @ E.T)[off].max().item()), rel=1e-5)


def test_better_of_two_takes_the_higher_normalised_top_score_ties_to_memory():
    from llmrec.objectives.coserec import Correlation, better_of_two

    # items 1..4 (rows 0 and 5 are padding / [MASK]); memory scores span [1, 3], model scores span [0, 10]
    mem = Correlation(torch.tensor([[0], [2], [3], [0], [1], [0]]),
                      torch.tensor([[0.0], [3.0], [1.5], [0.0], [2.0], [0.0]], dtype=torch.float64), 1.0, 3.0)
    mod = Correlation(torch.tensor([[0], [4], [4], [1], [3], [0]]),
                      torch.tensor([[0.0], [9.0], [5.0], [2.0], [5.0], [0.0]], dtype=torch.float64), 0.0, 10.0)
    got = better_of_two(mem, mod)[:, 0].tolist()
    # item 1: 1.0 vs 0.9 → memory; item 2: 0.25 vs 0.5 → model; item 3: no co-occurrence → model;
    # item 4: 0.5 vs 0.5 → tie, memory
    assert got == [0, 2, 4, 1, 1, 0]
