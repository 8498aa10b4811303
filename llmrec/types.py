"""Shared data types: Dataset (interactions + item catalog + user attributes), Split, CandidateSet, ScoreBatch.

Id convention everywhere inside llmrec: users are 1..U and items are 1..N (internal, contiguous); 0 is padding.
Raw ids from the files are kept in `Dataset.user_index` / `Dataset.item_index` (position i-1 ↔ internal id i).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from llmrec.io import atomic_write, atomic_write_json, hash_arrays

Phase = Literal["valid", "test"]


@dataclass
class ItemCatalog:
    """Item text fields, one row per internal item id 1..N (`frame.index`), plus the order of text fields.

    `frame` columns are free-form text attributes (e.g. `title`, `genres`, `year`); `text_fields` names the
    ones that make up an item sentence, in order (see `llmrec.data.item_text`).
    """

    frame: pd.DataFrame
    text_fields: list[str] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return len(self.frame)

    @property
    def has_titles(self) -> bool:
        return "title" in self.frame.columns

    def title(self, item: int) -> str:
        if self.has_titles:
            return str(self.frame.at[int(item), "title"])
        return f"item {int(item)}"

    def titles(self, items: Any) -> list[str]:
        return [self.title(int(i)) for i in np.asarray(items).reshape(-1)]


@dataclass(frozen=True)
class Domain:
    """The words prompts use for a data set's items and what users did with them (`{item_kind}`, `{action}` in
    prompts/); a registered data set declares its own in its `DatasetSpec`, any other gets these generic ones."""

    item_kind: str = "item"
    action: str = "interacted with"


@dataclass
class Dataset:
    """A loaded data set in canonical form.

    interactions: columns `user`, `item` (internal ids), `timestamp` (int64; the position in the sequence when
        the source has no time) and `rating` (float32, NaN when absent), sorted by user, then time, then the
        order of the source rows (a stable order for equal timestamps).
    items: the item catalog (1..N). users: user attributes indexed by internal user id, or None.
    domain: the prompt words for its items ("movie", "watched"), from the registered data set's spec.
    """

    name: str
    interactions: pd.DataFrame
    items: ItemCatalog
    user_index: pd.Index
    item_index: pd.Index
    users: pd.DataFrame | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    domain: Domain = field(default_factory=Domain)

    @property
    def n_users(self) -> int:
        return len(self.user_index)

    @property
    def n_items(self) -> int:
        return len(self.item_index)

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    def stats(self) -> dict[str, Any]:
        counts = self.interactions.groupby("user", sort=False).size().to_numpy()
        n = self.n_interactions
        out: dict[str, Any] = {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "density": n / max(1, self.n_users * self.n_items),
            "seq_len_min": int(counts.min()) if n else 0,
            "seq_len_mean": float(counts.mean()) if n else 0.0,
            "seq_len_max": int(counts.max()) if n else 0,
            "has_ratings": bool(self.interactions["rating"].notna().any()) if n else False,
            "has_titles": self.items.has_titles,
            "item_text_fields": list(self.items.text_fields),
            "user_attributes": [] if self.users is None else list(self.users.columns),
            "source": self.source,
        }
        out.update(self.meta)
        return out

    def internal_user(self, raw: Any) -> int:
        """Internal id of a raw user id (as in the files); accepts the raw id as int or str."""
        from llmrec.errors import DataError

        for key in (raw, str(raw)) + ((int(raw),) if str(raw).lstrip("-").isdigit() else ()):
            pos = self.user_index.get_indexer([key])[0]
            if pos >= 0:
                return int(pos) + 1
        raise DataError(f"{self.name}: unknown user {raw!r} (users are {self.user_index[0]!r}..)")


@dataclass
class Split:
    """Leave-one-out by time over chronological per-user sequences, stored as CSR.

    For a user with sequence s (length L): L ≥ 3 → train s[:-2], valid target s[-2], test target s[-1];
    L = 2 → train s[:1], test target s[-1] (no validation); L = 1 → train only.
    `history(users, "valid")` is the train part; `history(users, "test")` adds the validation item.
    """

    n_users: int
    n_items: int
    indptr: np.ndarray  # (U+2,) int64: user u's items are items[indptr[u]:indptr[u+1]]; user 0 is empty
    items: np.ndarray  # (nnz,) int64, chronological within a user
    timestamps: np.ndarray  # (nnz,) int64

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)  # (U+1,)

    @property
    def hash(self) -> str:
        return hash_arrays(self.indptr, self.items)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def eval_users(self, phase: Phase) -> np.ndarray:
        need = 3 if phase == "valid" else 2
        return np.nonzero(self.lengths >= need)[0].astype(np.int64)

    def _cut(self, phase: Phase | Literal["train"]) -> np.ndarray:
        """How many items at the end of each sequence are held out of the history for this phase."""
        lengths = self.lengths
        if phase == "test":
            return np.where(lengths >= 2, 1, 0)
        # train / valid: drop valid+test (L ≥ 3) or test (L = 2)
        return np.where(lengths >= 3, 2, np.where(lengths == 2, 1, 0))

    def history_bounds(self, users: np.ndarray, phase: Phase | Literal["train"]) -> tuple[np.ndarray, np.ndarray]:
        users = np.asarray(users, dtype=np.int64)
        starts = self.indptr[users]
        ends = self.indptr[users + 1] - self._cut(phase)[users]
        return starts, ends

    def targets(self, users: np.ndarray, phase: Phase) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        off = 1 if phase == "test" else 2
        return self.items[self.indptr[users + 1] - off]

    def history(
        self, users: np.ndarray, phase: Phase | Literal["train"], max_len: int | None = None
    ) -> np.ndarray:
        """Left-padded histories (B, T): most recent item last, 0 = padding; T = max_len or the longest."""
        starts, ends = self.history_bounds(users, phase)
        return pad_left(self.items, starts, ends, max_len)

    def history_lists(self, users: np.ndarray, phase: Phase | Literal["train"]) -> list[np.ndarray]:
        starts, ends = self.history_bounds(users, phase)
        return [self.items[s:e] for s, e in zip(starts, ends)]

    def train_matrix(self, phase: Phase | Literal["train"] = "train") -> Any:
        """Binary user × item CSR matrix (U+1, N+1) of the histories for `phase`."""
        import scipy.sparse as sp

        users = np.arange(self.n_users + 1)
        starts, ends = self.history_bounds(users, phase)
        lens = ends - starts
        rows = np.repeat(users, lens)
        cols = self.items[_ranges(starts, ends)]
        m = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(self.n_users + 1, self.n_items + 1)
        )
        m.data[:] = 1.0  # duplicates (repeat consumption) count once
        return m


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, e) for each pair, vectorised."""
    lens = np.maximum(ends - starts, 0)
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.cumsum(lens) + lens, lens)
    return offsets + np.arange(total)


def pad_left(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int | None = None) -> np.ndarray:
    """Rows items[s:e] right-aligned in a (B, T) zero-padded array, truncated to the last T; vectorised."""
    lens = ends - starts
    T = int(max_len if max_len is not None else (lens.max() if len(lens) else 0))
    T = max(T, 1)
    idx = ends[:, None] - T + np.arange(T)[None, :]  # (B, T)
    valid = idx >= starts[:, None]
    out = np.where(valid, items[np.clip(idx, 0, max(len(items) - 1, 0))] if len(items) else 0, 0)
    return out.astype(np.int64)


@dataclass
class CandidateSet:
    """The items each evaluated user's scorer must rank, saved once and shared by every method.

    `items` is None for full ranking (every item, the user's history masked). Otherwise (U, C) item ids with the
    target included (at a seeded position) and 0 as padding when rows have different lengths.
    """

    protocol: str
    phase: Phase
    users: np.ndarray  # (U,)
    targets: np.ndarray  # (U,)
    items: np.ndarray | None  # (U, C) or None
    split_hash: str
    seed: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_candidates(self) -> int | None:
        return None if self.items is None else int(self.items.shape[1])

    @property
    def hash(self) -> str:
        arrays = [self.users, self.targets] + ([] if self.items is None else [self.items])
        tag = hash_arrays(np.frombuffer(f"{self.protocol}|{self.phase}|{self.split_hash}".encode(), np.uint8))
        return hash_arrays(np.frombuffer(tag.encode(), np.uint8), *arrays)

    def subset(self, mask_or_index: np.ndarray) -> CandidateSet:
        idx = np.asarray(mask_or_index)
        return CandidateSet(
            protocol=self.protocol,
            phase=self.phase,
            users=self.users[idx],
            targets=self.targets[idx],
            items=None if self.items is None else self.items[idx],
            split_hash=self.split_hash,
            seed=self.seed,
            meta={**self.meta, "subset_of": self.hash},
        )

    def save(self, path: str | Path) -> None:
        path = Path(path)
        arrays = {"users": self.users, "targets": self.targets}
        if self.items is not None:
            arrays["items"] = self.items

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

        atomic_write(path, write)
        atomic_write_json(
            path.with_suffix(".json"),
            {
                "protocol": self.protocol,
                "phase": self.phase,
                "split_hash": self.split_hash,
                "seed": self.seed,
                "hash": self.hash,
                "n_users": len(self.users),
                "n_candidates": self.n_candidates,
                "meta": self.meta,
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> CandidateSet:
        from llmrec.errors import DataError

        path = Path(path)
        try:
            info = json.loads(path.with_suffix(".json").read_text())
            with np.load(path) as z:
                items = z["items"] if "items" in z.files else None
                out = cls(
                    protocol=info["protocol"],
                    phase=info["phase"],
                    users=z["users"],
                    targets=z["targets"],
                    items=items,
                    split_hash=info["split_hash"],
                    seed=info["seed"],
                    meta=info.get("meta", {}),
                )
        except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile, zlib.error) as e:
            raise DataError(f"{path}: unreadable candidate file ({type(e).__name__}: {e})") from None
        if out.hash != info.get("hash"):
            raise DataError(f"{path}: content hash {out.hash} does not match the recorded {info.get('hash')}")
        return out


@dataclass
class ScoreBatch:
    """What a scorer sees for B users.

    users: (B,) internal user ids. history: (B, T) left-padded item ids, most recent last (0 = padding) — the
    user's items before the target for this phase. candidates: (B, C) item ids to score (0 = padding, its score
    is ignored), or None for full ranking, in which case the scorer returns (B, N+1) with column j = item j.
    """

    users: torch.Tensor
    history: torch.Tensor
    candidates: torch.Tensor | None
    phase: Phase = "test"
