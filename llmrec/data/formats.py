"""Generic formats for a user's own data, detected automatically.

- A folder with `interactions.csv` (header `user_id,item_id[,timestamp][,rating]`), optional `items.csv`
  (`item_id,title,…`: every other column is an item text field) and `users.csv` (`user_id,…`).
- A sequence file (`.txt`, `.txt.gz`, or any text file): `user item1 item2 …` per line (one line per user,
  chronological), or `user item` per line (a user on many lines, file order = time). Whitespace-separated.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.canonical import RawData
from llmrec.data.readers import numeric_column, read_csv, read_lines
from llmrec.errors import DataError


def detect_format(path: Path) -> str:
    """'folder' or 'sequence'; anything else is a clear error."""
    if path.is_dir():
        if (path / "interactions.csv").is_file():
            return "folder"
        raise DataError(
            f"{path}: folder has no interactions.csv (expected interactions.csv with user_id,item_id"
            f"[,timestamp][,rating], and optional items.csv, users.csv)"
        )
    if path.is_file():
        if path.suffix == ".csv":
            raise DataError(f"{path}: a lone CSV file; put it in a folder as interactions.csv (with items.csv)")
        return "sequence"
    raise DataError(f"{path}: no such file or folder")


def read_sequence_file(path: Path, force: str | None = None) -> pd.DataFrame:
    """Parse `user item1 item2 …` or `user item` lines into (user, item, timestamp=position, rating=NaN).

    The layout is detected: if a user id appears on several lines, every line must have exactly two tokens
    (`user item`); otherwise each line is one user's sequence. Anything else is ambiguous and rejected.
    """
    lines = read_lines(path)
    users: list[str] = []
    items: list[list[str]] = []
    for n, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) < 2:
            raise DataError(f"{path}: line {n}: expected a user id followed by at least one item id, got {line!r}")
        users.append(tokens[0])
        items.append(tokens[1:])
    if not users:
        raise DataError(f"{path}: no interactions (the file is empty)")
    repeated = len(set(users)) < len(users)
    layout = force
    if layout is None:
        if not repeated:
            layout = "sequence"
        elif all(len(x) == 1 for x in items):
            layout = "pairs"
        else:
            first = next(i for i, u in enumerate(users) if users.index(u) != i)
            raise DataError(
                f"{path}: ambiguous format: user {users[first]!r} appears on several lines and some lines have "
                f"more than one item. Use `user item1 item2 …` with one line per user, or `user item` with "
                f"exactly two tokens per line (for ratings/timestamps use a folder with interactions.csv)"
            )
    if layout == "sequence" and repeated:
        dup = next(u for i, u in enumerate(users) if users.index(u) != i)
        raise DataError(f"{path}: user {dup!r} appears on more than one line of a sequence file")
    lens = np.array([len(x) for x in items])
    user_col = np.repeat(np.array(users, dtype=object), lens)
    item_col = np.array([t for x in items for t in x], dtype=object)
    if layout == "sequence":
        ts = np.concatenate([np.arange(k) for k in lens])
    else:
        ts = np.arange(len(user_col))  # the file order is the time order
    frame = pd.DataFrame({"user": user_col, "item": item_col, "timestamp": ts.astype(np.int64)})
    frame["rating"] = np.nan
    return frame


def load_sequence_path(path: Path) -> RawData:
    return RawData(read_sequence_file(path), meta={"format": "sequence file"})


def load_folder(path: Path) -> RawData:
    ipath = path / "interactions.csv"
    frame = read_csv(ipath, ["user_id", "item_id"])
    for col in ("user_id", "item_id"):
        empty = frame[col].str.strip() == ""
        if empty.any():
            row = int(np.argmax(empty.to_numpy()))
            raise DataError(f"{ipath}: line {frame.index[row]}: field {col!r} is empty")
    n = len(frame)
    if n == 0:
        raise DataError(f"{ipath}: no interactions (only a header)")
    ts = numeric_column(frame, "timestamp", ipath, "int") if "timestamp" in frame else np.arange(n)
    rating = numeric_column(frame, "rating", ipath) if "rating" in frame else np.full(n, np.nan)
    inter = pd.DataFrame(
        {
            "user": frame["user_id"].str.strip().to_numpy(dtype=object),
            "item": frame["item_id"].str.strip().to_numpy(dtype=object),
            "timestamp": np.asarray(ts, dtype=np.int64),
            "rating": np.asarray(rating, dtype=np.float64),
        }
    )
    items = None
    fields: list[str] = []
    if (path / "items.csv").is_file():
        items = read_csv(path / "items.csv", ["item_id"])
        items["item_id"] = items["item_id"].str.strip()
        dup = items["item_id"].duplicated()
        if dup.any():
            row = int(np.argmax(dup.to_numpy()))
            first = int(np.argmax((items["item_id"] == items["item_id"].iloc[row]).to_numpy()))
            raise DataError(f"{path / 'items.csv'}: line {items.index[row]}: item_id {items['item_id'].iloc[row]!r} "
                            f"repeated (first on line {items.index[first]}); give one line per item")
        items = items.set_index("item_id")
        fields = list(items.columns)
    users = None
    if (path / "users.csv").is_file():
        users = read_csv(path / "users.csv", ["user_id"])
        users["user_id"] = users["user_id"].str.strip()
        users = users.drop_duplicates("user_id").set_index("user_id")
    return RawData(inter, items, fields, users, {"format": "csv folder"})
