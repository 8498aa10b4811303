"""`llmrec recommend`: rank one user's candidates with a zero-shot LLM ranker and show the top items.

Examples:
  llmrec recommend --dataset ml-100k --user 1 --method verbalizer
  llmrec recommend --dataset nir-ml-100k --user 16 --method nir --json
  llmrec recommend --dataset ml-100k --user 1 --method pointwise --llm openai:http://127.0.0.1:8000/v1

What the ranker sees. History: the user's sequence as of the test phase — everything except the held-out last
item, exactly what `llmrec evaluate` hands a scorer — so a recommendation can be checked against that item
and nothing after it is used. Candidates: the user's row of a candidate protocol. The default, `nir-uf:19`
(NIR user filtering: the 19 unseen items most watched by the 12 most similar users), never inserts the
held-out item: it is a candidate only when similar users' histories put it there. `sampled:N` and
`candidates:FILE` are evaluation protocols that insert the held-out item on purpose; they are accepted, with a
note. The ranker never sees which candidate is held out; the plain-text output marks it after ranking.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from llmrec.data.canonical import DataConfig

DEFAULT_PROTOCOL = "nir-uf:19"


@dataclass
class RecommendConfig:
    """One recommendation: whose, with which ranker, over which candidates."""

    dataset: str = ""
    user: str = ""  # the raw user id, as in the data files
    method: str = "verbalizer"  # nir | listwise | verbalizer | pointwise
    llm: str | None = None  # LLM backend spec (default hf:smollm2-135m)
    protocol: str = DEFAULT_PROTOCOL  # where the candidates come from (see the command's doc)
    top: int = 10
    recent: int = 10  # history titles to show
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # ranker / llm-scorer options, as for evaluate
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        if self.top < 1:
            raise ValueError(f"top must be >= 1, got {self.top}")
        if self.protocol == "full":
            raise ValueError("protocol full: an LLM cannot rank the whole catalogue; use nir-uf:19 or sampled:N")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args, int_at_least, seed_arg

    p = sub.add_parser(
        "recommend", help="rank one user's candidates with an LLM ranker", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", help="registered name or path")
    p.add_argument("--user", help="raw user id")
    p.add_argument("--method", help="nir | listwise | verbalizer | pointwise (default verbalizer)")
    p.add_argument("--llm", help="LLM backend (hf:smollm2-135m, openai:URL#model)")
    p.add_argument("--protocol", help=f"candidate protocol (default {DEFAULT_PROTOCOL}; sampled:N, nir, "
                   "candidates:FILE)")
    p.add_argument("--top", type=int_at_least(1), help="how many items to show (default 10)")
    p.add_argument("--seed", type=seed_arg, help="seed for sampled candidates and the ranker")
    p.add_argument("--json", action="store_true", help='print {"user", "items": [{"item_id", "title", "score"}], …}')
    add_data_args(p)
    add_config_args(p)
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> RecommendConfig:
    from llmrec.config import load_config

    base: dict[str, Any] = {}
    for key in ("dataset", "user", "method", "llm", "protocol", "top", "seed"):
        value = getattr(args, key, None)
        if value is not None:
            base[key] = str(value) if key == "user" else value
    return load_config(RecommendConfig, args.config, args.overrides, base=base)


def recommend(cfg: RecommendConfig, data_dir: str | None = None, backend: Any = None) -> dict[str, Any]:
    """The whole command as a function: {"user", "method", "protocol", "llm", "history", "items", ["summary"]}
    plus the private "_held_out" (title and rank of the held-out item, for the plain-text view only)."""
    import numpy as np
    import torch

    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates
    from llmrec.errors import ConfigError, DataError
    from llmrec.scorers.llm import LLMScorer
    from llmrec.types import ScoreBatch

    if not cfg.dataset or not cfg.user:
        raise ConfigError("recommend needs --dataset and --user")
    scorer = LLMScorer(cfg.method, llm=cfg.llm, options=dict(cfg.options), seed=cfg.seed, backend=backend)
    ds = load_dataset(cfg.dataset, data_dir, cfg.data)
    split = leave_one_out(ds)
    u = ds.internal_user(cfg.user)
    cands = make_candidates(ds, split, cfg.protocol, "test", cfg.seed, data_dir=data_dir)
    row = np.nonzero(cands.users == u)[0]
    if not len(row):
        raise DataError(
            f"user {cfg.user!r} has no candidates under protocol {cfg.protocol!r} "
            f"({'not among its users' if cfg.protocol != 'nir' else 'not one of the 170 published NIR users'})"
        )
    items = cands.items[row[0]]  # (C,)
    items = items[items > 0]
    if not len(items):
        raise DataError(f"user {cfg.user!r}: protocol {cfg.protocol!r} gives no candidates")
    scorer.fit(ds, split)
    users = np.array([u])
    hist = split.history(users, "test")  # (1, T): everything before the held-out test item
    batch = ScoreBatch(torch.from_numpy(users), torch.from_numpy(hist), torch.from_numpy(items[None, :]), "test")
    scores = scorer.score(batch)[0].numpy()  # (C,)
    order = np.argsort(-scores, kind="stable")
    result = scorer.last_results[0]
    held = int(cands.targets[row[0]])
    out: dict[str, Any] = {
        "user": _plain(ds.user_index[u - 1]),
        "method": cfg.method,
        "protocol": cfg.protocol,
        "llm": scorer.backend.name,
        "history": [scorer.titles[i] for i in hist[0] if i > 0][-cfg.recent :],
        "items": [
            {"item_id": _plain(ds.item_index[items[j] - 1]), "title": scorer.titles[items[j]],
             "score": round(float(scores[j]), 6)}
            for j in order[: cfg.top]
        ],
    }
    if "summary" in result.extras:
        out["summary"] = result.extras["summary"]
    rank = None
    if held in items:  # 1-based and pessimistic, as the evaluation counts: every tie ranks above the held-out item
        at = int(np.nonzero(items == held)[0][0])
        rank = int((scores >= scores[at]).sum())
    out["_held_out"] = {"title": scorer.titles[held], "rank": rank, "n_candidates": int(len(items)),
                        "inserted": bool(cands.meta.get("target_inserted", False))}
    return out


def _plain(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    out = recommend(cfg, args.data_dir)
    held = out.pop("_held_out")
    if held["inserted"]:
        print(f"llmrec: note: protocol {cfg.protocol} is an evaluation protocol: it inserts the user's held-out "
              f"item into the candidates", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(f"User {out['user']} · {cfg.dataset} · method {out['method']} · {out['llm']} · candidates {out['protocol']}")
    print("\nRecent history (oldest first; the held-out last item excluded):")
    for t in out["history"]:
        print(f"  - {t}")
    if "summary" in out:
        print(f"\nPreference summary (NIR step 1):\n  {out['summary']}")
    print(f"\nTop {len(out['items'])} of {held['n_candidates']} candidates:")
    for k, it in enumerate(out["items"], 1):
        mark = "   <- the held-out next item" if it["title"] == held["title"] else ""
        print(f"  {k:>2}. {it['title']}  (score {it['score']:.4g}){mark}")
    where = (f"ranked {held['rank']} of {held['n_candidates']}" if held["rank"]
             else "not among the candidates")
    print(f"\nHeld-out next item: {held['title']} — {where} (shown after ranking; the ranker never sees it).")
    return 0
