"""Leave-one-out split by time: the last item of each user is the test target, the one before it validation."""

from __future__ import annotations

import numpy as np

from llmrec.types import Dataset, Split


def leave_one_out(dataset: Dataset) -> Split:
    """Per-user chronological sequences as CSR (interactions are already sorted by user, time, source order).

    Equal timestamps keep the order of the source rows, so the split is stable across runs and machines.
    """
    frame = dataset.interactions
    users = frame["user"].to_numpy()
    counts = np.bincount(users, minlength=dataset.n_users + 1)  # (U+1,), user 0 has none
    indptr = np.zeros(dataset.n_users + 2, dtype=np.int64)
    np.cumsum(counts, out=indptr[1 : dataset.n_users + 2])
    return Split(
        n_users=dataset.n_users,
        n_items=dataset.n_items,
        indptr=indptr,
        items=frame["item"].to_numpy().astype(np.int64),
        timestamps=frame["timestamp"].to_numpy().astype(np.int64),
    )
