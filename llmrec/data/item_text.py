"""Item sentences (Recformer style): key–value attributes flattened into one text per item,
e.g. `title: Heat (1995); genres: Action, Crime, Thriller; year: 1995`. Any item with text can be encoded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmrec.types import ItemCatalog


def item_sentence(catalog: ItemCatalog, item: int, fields: Sequence[str] | None = None) -> str:
    row = catalog.frame.loc[int(item)]
    parts = []
    for f in fields if fields is not None else catalog.text_fields:
        value = str(row.get(f, "")).strip()
        if value:
            parts.append(f"{f}: {value}")
    return "; ".join(parts) if parts else f"item: {row.get('raw_id', item)}"


def item_sentences(catalog: ItemCatalog, items: Sequence[int] | np.ndarray | None = None,
                   fields: Sequence[str] | None = None) -> list[str]:
    """Sentences for `items` (default: every item 1..N, in id order)."""
    ids = np.arange(1, catalog.n_items + 1) if items is None else np.asarray(items).reshape(-1)
    use = list(fields if fields is not None else catalog.text_fields)
    cols = [f for f in use if f in catalog.frame.columns]
    frame = catalog.frame.loc[ids]
    values = [frame[f].astype(str).str.strip().tolist() for f in cols]
    raw = frame["raw_id"].astype(str).tolist()
    out = []
    for r in range(len(ids)):
        parts = [f"{f}: {vals[r]}" for f, vals in zip(cols, values) if vals[r]]
        out.append("; ".join(parts) if parts else f"item: {raw[r]}")
    return out
