"""Training windows cover every training item exactly once as a target, with enough context; batches are seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec.training.windows import epoch_batches, make_windows
from llmrec.types import Split


def split_of(lengths: list[int]) -> Split:
    items = np.concatenate([np.arange(1, n + 1) + 100 * u for u, n in enumerate(lengths, 1)]).astype(np.int64)
    indptr = np.concatenate([[0, 0], np.cumsum(lengths)]).astype(np.int64)
    return Split(len(lengths), int(items.max()), indptr, items, np.arange(len(items), dtype=np.int64))


@pytest.mark.parametrize("stride", [None, 3, 0])
def test_every_training_item_is_fresh_exactly_once(stride):
    lengths = [3, 9, 25, 14]  # training parts: 1, 7, 23, 12 items
    split = split_of(lengths)
    w = make_windows(split, max_len=6, stride=stride)
    assert w.seq.shape[1] == 7
    for u, n in enumerate(lengths, 1):
        train = split.sequence(u)[: n - 2].tolist()
        rows = (w.users == u).nonzero().flatten()
        fresh = [int(x) for r in rows for x in w.seq[r][w.fresh[r]]]
        if stride == 0:  # only the most recent window
            assert sorted(fresh) == sorted(train[-7:])
        else:
            assert sorted(fresh) == sorted(train)
        for r in rows:  # windows are contiguous pieces of the training sequence
            items = [int(x) for x in w.seq[r] if x != 0]
            start = train.index(items[0])
            assert items == train[start : start + len(items)]


def test_fresh_targets_keep_context():
    split = split_of([40])
    w = make_windows(split, max_len=10, stride=4)
    for r in range(len(w)):
        pos = w.fresh[r].nonzero().flatten()
        starts_at_zero = int(w.seq[r][w.seq[r] != 0][0]) == 101
        if not starts_at_zero:
            assert int(pos.min()) >= 11 - 4  # at least L - stride items before each target


def test_epoch_batches_are_a_seeded_permutation():
    split = split_of([5, 7, 9, 11, 13, 15, 17, 19])
    w = make_windows(split, max_len=4)
    a = epoch_batches(w, 3, torch.Generator().manual_seed(0), bucket=2)
    b = epoch_batches(w, 3, torch.Generator().manual_seed(0), bucket=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert sorted(torch.cat(a).tolist()) == list(range(len(w)))
