"""Amazon Beauty / Sports_and_Outdoors / Toys_and_Games in the S3-Rec format (5-core sequence files).

Files: `<Name>.txt` (`user item1 item2 …`, chronological), `<Name>_item2attributes.json` (integer attribute
ids, no names) and `maps/<Name>.item2asin.tsv`. There are no titles: item sentences use the ASIN and the
attribute ids, so text methods are weak here (say so beside any number).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmrec.data.canonical import RawData
from llmrec.data.formats import read_sequence_file
from llmrec.data.readers import read_json, read_lines
from llmrec.data.sources import RemoteFile
from llmrec.errors import DataError

S3REC_COMMIT = "49a890dcb516c9ed3126564495234ea74d5cd566"
_BASE = f"https://raw.githubusercontent.com/aHuiWang/CIKM2020-S3Rec/{S3REC_COMMIT}/data"
S3REC_FILES = {
    "Beauty": {
        "Beauty.txt": "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
        "Beauty_item2attributes.json": "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4",
    },
    "Sports_and_Outdoors": {
        "Sports_and_Outdoors.txt": "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
        "Sports_and_Outdoors_item2attributes.json": "7fb10733ac4f1811384a52144cdefa7fcc7536fa80a7232c5da9bd789155c34b",
    },
    "Toys_and_Games": {
        "Toys_and_Games.txt": "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
        "Toys_and_Games_item2attributes.json": "d371acd25101eedac04afc727626464b7acec770c4eda708705d51eb76eb1ad0",
    },
}


def remote_files(name: str) -> dict[str, RemoteFile]:
    return {f: RemoteFile(f"{_BASE}/{f}", sha) for f, sha in S3REC_FILES[name].items()}


def load_s3rec(folder: Path, name: str) -> RawData:
    seq_path = folder / f"{name}.txt"
    inter = read_sequence_file(seq_path, force="sequence")
    inter["user"] = inter["user"].astype("int64")
    inter["item"] = inter["item"].astype("int64")
    items = pd.DataFrame(index=pd.Index(sorted(inter["item"].unique()), name="item"))
    attr_path = folder / f"{name}_item2attributes.json"
    if attr_path.is_file():
        attrs = read_json(attr_path)
        if not isinstance(attrs, dict):
            raise DataError(f"{attr_path}: expected a JSON object {{item_id: [attribute ids]}}")
        items["attributes"] = [", ".join(f"a{a}" for a in attrs.get(str(i), [])) for i in items.index]
    map_path = folder / "maps" / f"{name}.item2asin.tsv"
    if map_path.is_file():
        lines = read_lines(map_path)
        asin = {}
        for n, line in enumerate(lines[1:], 2):
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError(f"{map_path}: line {n}: expected item_id<TAB>asin")
            asin[int(parts[0])] = parts[1]
        items.insert(0, "asin", [asin.get(int(i), "") for i in items.index])
    fields = [f for f in ("asin", "attributes") if f in items.columns]
    return RawData(inter, items, fields, None, {"item_text": "ASIN and attribute ids only (no titles)"})
