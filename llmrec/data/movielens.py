"""MovieLens-100K from the original GroupLens files: u.data, u.item (latin-1), u.user, u.genre."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.canonical import RawData
from llmrec.data.readers import read_lines, require_file
from llmrec.data.sources import RemoteFile
from llmrec.errors import DataError

# The GroupLens archive (frozen since 1998): 4,924,029 bytes.
ML100K_ZIP = RemoteFile(
    url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    size=4_924_029,
)
# Members checked after extraction (the archive could be intact but a copy on disk edited).
ML100K_MEMBERS = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
}
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def read_u_data(path: Path) -> pd.DataFrame:
    """`user item rating timestamp`, tab-separated; every line checked."""
    require_file(path, "MovieLens ratings: user<TAB>item<TAB>rating<TAB>timestamp")
    lines = read_lines(path)
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 4:
            raise DataError(f"{path}: line {n}: expected 4 tab-separated fields (user item rating timestamp), "
                            f"got {len(parts)}")
        rows.append(parts)
    if not rows:
        raise DataError(f"{path}: no ratings")
    arr = np.array(rows)
    try:
        data = arr.astype(np.int64)
    except ValueError:
        for n, row in enumerate(rows, 1):
            for field, v in zip(("user", "item", "rating", "timestamp"), row):
                if not v.strip().lstrip("-").isdigit():
                    raise DataError(f"{path}: line {n}: field {field!r} = {v!r} is not an integer") from None
        raise
    return pd.DataFrame(
        {"user": data[:, 0], "item": data[:, 1], "timestamp": data[:, 3], "rating": data[:, 2].astype(np.float64)}
    )


def read_u_item(path: Path) -> pd.DataFrame:
    """`id | title (year) | release date | video date | URL | 19 genre flags` in latin-1."""
    require_file(path, "MovieLens items, latin-1, |-separated")
    rows = []
    for n, line in enumerate(read_lines(path, encoding="latin-1"), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 24:
            raise DataError(f"{path}: line {n}: expected 24 |-separated fields, got {len(parts)}")
        try:
            item = int(parts[0])
            flags = [int(x) for x in parts[5:]]
        except ValueError:
            raise DataError(f"{path}: line {n}: item id and genre flags must be integers") from None
        title = parts[1].strip()
        m = _YEAR.search(title) or re.search(r"(\d{4})$", parts[2].strip())
        genres = ", ".join(g for g, f in zip(GENRES, flags) if f and g != "unknown")
        rows.append({"item": item, "title": title, "genres": genres, "year": m.group(1) if m else ""})
    return pd.DataFrame(rows).set_index("item")


def read_u_user(path: Path) -> pd.DataFrame:
    require_file(path)
    rows = []
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5:
            raise DataError(f"{path}: line {n}: expected 5 |-separated fields (id|age|gender|occupation|zip)")
        try:
            rows.append({"user": int(parts[0]), "age": int(parts[1]), "gender": parts[2],
                         "occupation": parts[3], "zip": parts[4]})
        except ValueError:
            raise DataError(f"{path}: line {n}: user id and age must be integers") from None
    return pd.DataFrame(rows).set_index("user")


def load_ml100k(folder: Path) -> RawData:
    inter = read_u_data(folder / "u.data")
    items = read_u_item(folder / "u.item")
    users = read_u_user(folder / "u.user") if (folder / "u.user").is_file() else None
    return RawData(inter, items, ["title", "genres", "year"], users)


def normalise_nir_title(title: str) -> str:
    """u.item title → the NIR json form: drop the year, move a trailing ", The" to the front."""
    t = _YEAR.sub("", title).strip()
    if t.endswith(", The"):
        t = "The " + t[: -len(", The")]
    return t
