"""A cold-start split: a seeded fraction of items never appears in training; users whose test item is one of
them are evaluated.

Every interaction with a cold item is removed, except when it is a user's last interaction (the leave-one-out
test target). The remaining sequences are split by leave-one-out as usual, so cold items are absent from every
training sequence, every validation target and every test history: only their text is known. The catalog and
the item/user ids stay those of the original data set. ID models trained on this split have never seen a cold
item (popularity 0, no co-occurrence); text scorers can still rank them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmrec.data.candidates import make_candidates
from llmrec.data.split import leave_one_out
from llmrec.errors import DataError
from llmrec.types import CandidateSet, Dataset, Split


@dataclass
class ColdStart:
    """The cold-start data set and split, the cold items, and the users to evaluate (test target is cold)."""

    dataset: Dataset  # the original catalog; interactions without cold items (except last ones)
    split: Split
    cold_items: np.ndarray  # (K,) sorted internal item ids
    users: np.ndarray  # (U,) users whose test target is a cold item
    warm_users: np.ndarray  # users whose test target is a warm item (same split), for comparison
    frac: float
    seed: int

    def candidates(self, protocol: str = "full", seed: int | None = None, cold: bool = True) -> CandidateSet:
        """The candidate set of `protocol` (full, sampled:N, …) restricted to the cold (or warm) test users."""
        cs = make_candidates(self.dataset, self.split, protocol, "test", self.seed if seed is None else seed,
                             use_cache=False)
        want = self.users if cold else self.warm_users
        sub = cs.subset(np.isin(cs.users, want))
        sub.protocol = f"coldstart:{self.frac:g}:{protocol}" if cold else f"coldstart-warm:{self.frac:g}:{protocol}"
        sub.meta = {**sub.meta, "cold_items": int(len(self.cold_items)), "cold_frac": self.frac,
                    "cold_seed": self.seed, "users": "cold test targets" if cold else "warm test targets"}
        return sub


def cold_start_split(dataset: Dataset, frac: float = 0.1, seed: int = 0) -> ColdStart:
    """Hold `frac` of the items (chosen with `seed`) out of training; see the module doc."""
    if not 0 < frac < 1:
        raise DataError(f"cold-start fraction must be in (0, 1), got {frac}")
    N = dataset.n_items
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(np.arange(1, N + 1), size=max(1, int(round(frac * N))), replace=False))
    is_cold = np.zeros(N + 1, dtype=bool)
    is_cold[cold] = True
    frame = dataset.interactions  # sorted by user, time, source order
    users = frame["user"].to_numpy()
    last = np.r_[users[1:] != users[:-1], True]  # each user's final interaction (the test target)
    keep = ~is_cold[frame["item"].to_numpy()] | last
    inter = frame[keep].reset_index(drop=True)
    name = f"{dataset.name}-coldstart{frac:g}-seed{seed}"
    meta = {**dataset.meta, "cold_items": int(len(cold)), "cold_frac": frac, "cold_seed": seed,
            "removed_interactions": int((~keep).sum())}
    ds = replace(dataset, name=name, interactions=inter, meta=meta)
    split = leave_one_out(ds)
    test_users = split.eval_users("test")
    targets = split.targets(test_users, "test")
    return ColdStart(ds, split, cold, test_users[is_cold[targets]], test_users[~is_cold[targets]], frac, seed)
