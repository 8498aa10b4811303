"""A tiny split and tiny random models shared by the objective tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec.models import build_model
from llmrec.objectives import SeqBatch
from llmrec.types import Split

N_ITEMS = 12


def tiny_split(seed: int = 0, n_users: int = 10) -> Split:
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, N_ITEMS + 1, size=int(rng.integers(3, 12))) for _ in range(n_users)]
    lens = np.array([0] + [len(s) for s in seqs])
    indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    items = np.concatenate(seqs).astype(np.int64)
    return Split(n_users, N_ITEMS, indptr, items, np.arange(len(items), dtype=np.int64))


def tiny_model(name: str, dropout: float = 0.0, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, N_ITEMS, {"max_len": 6, "hidden": 8, "n_heads": 2, "dropout": dropout})


def tiny_batch(split: Split, seed: int = 0) -> SeqBatch:
    from llmrec.training.windows import make_windows

    w = make_windows(split, 6)
    return SeqBatch(w.seq, w.fresh, w.users, torch.Generator().manual_seed(seed))


@pytest.fixture
def split() -> Split:
    return tiny_split()
