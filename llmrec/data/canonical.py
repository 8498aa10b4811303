"""Raw frames → the canonical `Dataset`: filters (rating threshold, k-core), id remapping (0 = padding),
and a stable chronological order (ties by timestamp keep the source order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from llmrec.errors import ConfigError, DataError
from llmrec.types import Dataset, Domain, ItemCatalog


@dataclass
class DataConfig:
    """How raw interactions are filtered before splitting. The defaults keep every interaction, which is how
    ml-100k and the S3-Rec Amazon files are used in the literature (the Amazon files are already 5-core)."""

    min_rating: float | None = None  # keep interactions rated ≥ this (implicit feedback from explicit ratings)
    k_core: int = 0  # iteratively keep users and items with ≥ k interactions; 0 = off
    dedup: bool = False  # keep only the first interaction of each (user, item) pair

    def __post_init__(self) -> None:
        if self.k_core < 0:
            raise ConfigError(f"data.k_core must be ≥ 0, got {self.k_core}")


@dataclass
class RawData:
    """What a loader returns: raw ids as in the files.

    interactions: columns user, item, timestamp (numeric), rating (float, NaN if absent), in source order.
    items: indexed by raw item id, text columns; text_fields orders the ones used for item sentences.
    users: indexed by raw user id (attributes), or None.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    text_fields: list[str] = field(default_factory=list)
    users: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def k_core(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than k interactions until none is left."""
    while True:
        ucount = frame.groupby("user")["item"].transform("size")
        icount = frame.groupby("item")["user"].transform("size")
        keep = (ucount >= k) & (icount >= k)
        if keep.all():
            return frame
        frame = frame[keep]
        if frame.empty:
            return frame


def _sorted_index(values: pd.Series) -> pd.Index:
    """Distinct raw ids in natural order (numeric when every id is an integer)."""
    uniq = pd.unique(values)
    try:
        as_int = np.array([int(v) for v in uniq])
        order = np.argsort(as_int, kind="stable")
        return pd.Index(np.asarray(uniq, dtype=object)[order] if uniq.dtype == object else uniq[order])
    except (TypeError, ValueError):
        return pd.Index(sorted(uniq, key=str))


def build_dataset(
    name: str, raw: RawData, cfg: DataConfig | None = None, source: str = "", domain: Domain | None = None
) -> Dataset:
    cfg = cfg or DataConfig()
    frame = raw.interactions.reset_index(drop=True)
    frame = frame.assign(order=np.arange(len(frame), dtype=np.int64))
    n_raw = len(frame)
    if cfg.min_rating is not None:
        if frame["rating"].isna().all():
            raise DataError(f"{name}: data.min_rating is set but the data set has no ratings")
        frame = frame[frame["rating"] >= cfg.min_rating]
    if cfg.dedup:
        frame = frame.sort_values(["user", "timestamp", "order"], kind="stable").drop_duplicates(["user", "item"])
    if cfg.k_core > 0:
        frame = k_core(frame, cfg.k_core)
    if frame.empty:
        raise DataError(
            f"{name}: no interactions left after filtering ({n_raw} before; min_rating={cfg.min_rating}, "
            f"k_core={cfg.k_core})"
        )
    user_index = _sorted_index(frame["user"])
    item_index = _sorted_index(frame["item"])
    users = user_index.get_indexer(frame["user"]) + 1
    items = item_index.get_indexer(frame["item"]) + 1
    inter = pd.DataFrame(
        {
            "user": users.astype(np.int64),
            "item": items.astype(np.int64),
            "timestamp": frame["timestamp"].to_numpy().astype(np.int64),
            "rating": frame["rating"].to_numpy().astype(np.float32),
            "order": frame["order"].to_numpy(),
        }
    )
    inter = inter.sort_values(["user", "timestamp", "order"], kind="stable").drop(columns="order")
    inter = inter.reset_index(drop=True)

    if raw.items is not None:
        cat = raw.items.reindex(item_index)
        cat.index = pd.RangeIndex(1, len(item_index) + 1, name="item")
        cat = cat.fillna("")
    else:
        cat = pd.DataFrame(index=pd.RangeIndex(1, len(item_index) + 1, name="item"))
    cat.insert(0, "raw_id", item_index.astype(str))
    user_frame = None
    if raw.users is not None:
        user_frame = raw.users.reindex(user_index)
        user_frame.index = pd.RangeIndex(1, len(user_index) + 1, name="user")
    meta = dict(raw.meta)
    if n_raw != len(inter):
        meta["filtered_out"] = n_raw - len(inter)
    return Dataset(
        name=name,
        interactions=inter,
        items=ItemCatalog(cat, [f for f in raw.text_fields if f in cat.columns]),
        user_index=user_index,
        item_index=item_index,
        users=user_frame,
        source=source,
        meta=meta,
        domain=domain or Domain(),
    )
