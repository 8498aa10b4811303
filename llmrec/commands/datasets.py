"""`llmrec datasets`: the registered data sets, where each is found, and their terms."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list registered data sets", description=__doc__)
    p.add_argument("--json", action="store_true", help="print JSON")
    from llmrec.commands._common import add_data_args

    add_data_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmrec.data import DATASETS
    from llmrec.data.datasets import locate
    from llmrec.errors import DataError

    rows = []
    for name in DATASETS.names():
        spec = DATASETS.get(name)
        try:
            folder, _ = locate(spec, args.data_dir, allow_download=False)
            where = str(folder)
        except DataError:
            where = "not found (downloadable)" if spec.fetch else "not found"
        rows.append({"name": name, "description": spec.description, "location": where, "terms": spec.terms,
                     "citation": spec.citation})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['name']:<12} {r['description']}\n{'':<12} at: {r['location']}\n{'':<12} terms: {r['terms']}")
    print("\nAlso accepted: a folder with interactions.csv (+ items.csv, users.csv), or a sequence file "
          "(`user item1 item2 …` or `user item` per line; .gz accepted).")
    return 0
