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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmrec.pipelines.recommend import RecommendConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args, int_at_least, seed_arg
    from llmrec.pipelines.recommend import DEFAULT_PROTOCOL
    from llmrec.rankers import RANKERS

    p = sub.add_parser(
        "recommend", help="rank one user's candidates with an LLM ranker", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", help="registered name or path")
    p.add_argument("--user", help="raw user id")
    p.add_argument("--method", help=f"{' | '.join(RANKERS.names())} (default verbalizer)")
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
    from llmrec.pipelines.recommend import RecommendConfig

    base: dict[str, Any] = {}
    for key in ("dataset", "user", "method", "llm", "protocol", "top", "seed"):
        value = getattr(args, key, None)
        if value is not None:
            base[key] = str(value) if key == "user" else value
    return load_config(RecommendConfig, args.config, args.overrides, base=base)


def run(args: argparse.Namespace) -> int:
    from llmrec.pipelines.recommend import recommend

    cfg = build_config(args)
    rec = recommend(cfg, args.data_dir)
    out, held = rec.to_dict(), rec.held_out
    if held.inserted:
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
    print(f"\nTop {len(out['items'])} of {held.n_candidates} candidates:")
    for k, it in enumerate(out["items"], 1):
        mark = "   <- the held-out next item" if it["title"] == held.title else ""
        print(f"  {k:>2}. {it['title']}  (score {it['score']:.4g}){mark}")
    where = f"ranked {held.rank} of {held.n_candidates}" if held.rank else "not among the candidates"
    print(f"\nHeld-out next item: {held.title} — {where} (shown after ranking; the ranker never sees it).")
    return 0
