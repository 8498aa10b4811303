"""The NIR paper's ML-100K inputs (Wang & Lim 2023): `ml_100k.json` and the published 19-candidate sets.

`ml_100k.json` holds 943 entries `[history titles joined by " | ", target title]` (oldest first). As a data
set, each entry is a user (raw id = its index, the paper's PID) whose sequence is history + target, and items
are the distinct titles; each title is mapped back to an ML-100K item id where exactly one u.item title
normalises to it (year dropped, trailing ", The" moved to the front), the rest are counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmrec.data.canonical import RawData
from llmrec.data.movielens import normalise_nir_title, read_u_item
from llmrec.data.readers import read_json, require_file
from llmrec.data.sources import RemoteFile
from llmrec.errors import DataError

NIR_COMMIT = "42e1deb9ad0af64ea3ea4b2cbb6f091490a99917"
_BASE = f"https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Next-Item-Rec/{NIR_COMMIT}"
NIR_FILES = {
    "ml_100k.json": RemoteFile(
        f"{_BASE}/ml_100k.json", "2062f9c75c923223736097a7a3f8131902c023f5bee9b671324743c72cc9925c"
    ),
    "results_multi_prompting_len8_numcand_19_2023.json": RemoteFile(
        f"{_BASE}/results_multi_prompting_len8_numcand_19_2023.json",
        "32b93a78b09be0108a0a6b54952746e11b45724563ef4f4d21a951cfde109a13",
    ),
}
RESULTS_FILE = "results_multi_prompting_len8_numcand_19_2023.json"
SEP = " | "


def read_nir_entries(path: Path) -> list[tuple[list[str], str]]:
    data = read_json(require_file(path, "the NIR ml_100k.json"))
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of [history, target] entries")
    out = []
    for i, entry in enumerate(data):
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            raise DataError(f"{path}: entry {i}: expected [history string, target title]")
        out.append((entry[0].split(SEP), entry[1]))
    return out


def title_map(ml100k_folder: Path) -> tuple[dict[str, int], pd.DataFrame]:
    """Normalised title → ML-100K item id, for titles that exactly one item normalises to."""
    items = read_u_item(ml100k_folder / "u.item")
    norm = items["title"].map(normalise_nir_title)
    counts = norm.value_counts()
    unique = {t: int(i) for i, t in norm.items() if counts[t] == 1}
    return unique, items


def load_nir(folder: Path, ml100k_folder: Path | None) -> RawData:
    entries = read_nir_entries(folder / "ml_100k.json")
    users, items, ts = [], [], []
    for pid, (history, target) in enumerate(entries):
        seq = history + [target]
        users.extend([pid] * len(seq))
        items.extend(seq)
        ts.extend(range(len(seq)))
    inter = pd.DataFrame({"user": users, "item": items, "timestamp": np.array(ts, dtype=np.int64)})
    inter["rating"] = np.nan
    titles = pd.unique(inter["item"])
    catalog = pd.DataFrame({"title": titles}, index=pd.Index(titles, name="item"))
    meta = {"pid_is_raw_user_id": True}
    if ml100k_folder is not None and (ml100k_folder / "u.item").is_file():
        mapping, ml_items = title_map(ml100k_folder)
        ids = [mapping.get(t) for t in titles]
        catalog["ml100k_id"] = [str(i) if i is not None else "" for i in ids]
        catalog["genres"] = [ml_items.at[i, "genres"] if i is not None else "" for i in ids]
        catalog["year"] = [ml_items.at[i, "year"] if i is not None else "" for i in ids]
        meta["titles_mapped_to_ml100k"] = int(sum(i is not None for i in ids))
        meta["titles_not_mapped"] = int(sum(i is None for i in ids))
        fields = ["title", "genres", "year"]
    else:
        meta["titles_not_mapped"] = len(titles)
        meta["ml100k_mapping"] = "ml-100k folder not found beside nir-ml-100k"
        fields = ["title"]
    return RawData(inter, catalog, fields, None, meta)


def split_candidate_titles(text: str, vocab: set[str]) -> list[str] | None:
    """Split a ", "-joined list of titles, some of which contain ", ", using the known titles.

    Dynamic programming over the pieces: the split into known titles with the fewest parts; None if none.
    """
    pieces = text.split(", ")
    n = len(pieces)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(1, n + 1):
        for start in range(end):
            prev = best[start]
            if prev is None:
                continue
            cand = ", ".join(pieces[start:end])
            if cand in vocab and (best[end] is None or len(prev) + 1 < len(best[end])):  # type: ignore[arg-type]
                best[end] = prev + [cand]
    return best[n]


def published_candidates(folder: Path, vocab: set[str]) -> list[dict]:
    """The 170 published records: PID, candidate titles (19), ground truth, GPT-3.5's hit."""
    path = folder / RESULTS_FILE
    data = read_json(require_file(path, "the NIR published results"))
    head, tail = "Candidate Set (candidate movies): ", ".\nThe movies I have watched"
    out = []
    for rec in data:
        text = rec["Input_1"]
        a = text.find(head)
        b = text.find(tail, a)
        if a < 0 or b < 0:
            raise DataError(f"{path}: PID {rec.get('PID')}: no candidate set in Input_1")
        titles = split_candidate_titles(text[a + len(head) : b], vocab)
        if titles is None:
            raise DataError(f"{path}: PID {rec['PID']}: candidate titles do not match the data set's titles")
        out.append({"pid": int(rec["PID"]), "candidates": titles, "target": rec["GT"], "hit": int(rec["Hit"])})
    return out
