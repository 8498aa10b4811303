"""`llmrec recommend`: one user's top items, from any scorer (`--scorer`) or from an LLM ranker (`--method`).

Examples:
  llmrec recommend --dataset ml-100k --scorer run:runs/sasrec-ml-100k --user 1 --k 10
  llmrec recommend --dataset ml-100k --scorer itemknn --history 50,172,181 --json
  llmrec recommend --dataset ml-100k --scorer hybrid:eval/configs/hybrids/zsp_fusion.yaml --user 1 --explain
  llmrec recommend --dataset ml-100k --user 1 --method verbalizer
  llmrec recommend --dataset nir-ml-100k --user 16 --method nir --json

With --scorer (any scorer spec: pop, itemknn, bpr, run:DIR, text:ENC[+ADAPTER], hybrid:FILE.yaml, llm:RANKER):
the scorer is fitted on the data set and ranks every item outside the history (the history is never
recommended). The history is the user's whole sequence in the data (--user), or raw item ids for a user the
data does not know (--history ID,ID,… or --history-file F: ids separated by commas, spaces or new lines, oldest
first). llm:* scorers rank the top --candidates (default 20) items of --retriever (default itemknn). --explain
shows each hybrid component's score of each item (and the re-ranker's). --json prints
{"user", "items": [{"item_id", "title", "score", "components"?}]} ("components" with --explain, for hybrids).

With --method (the LLM rankers; the default when --scorer is absent). What the ranker sees. History: the user's sequence as of the test phase — everything except the held-out last
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
    from llmrec.pipelines.recommend import RecommendConfig, RecommenderConfig, UserRecommendations

SCORER_ONLY = ("history", "history_file", "explain", "candidates", "retriever")  # options of the --scorer form
METHOD_ONLY = ("method", "protocol")  # options of the --method form


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_config_args, add_data_args, int_at_least, seed_arg
    from llmrec.pipelines.recommend import DEFAULT_PROTOCOL
    from llmrec.rankers import RANKERS

    p = sub.add_parser(
        "recommend", help="one user's top items from any scorer (--scorer) or an LLM ranker (--method)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", help="registered name or path")
    p.add_argument("--scorer", help="any scorer spec: pop, itemknn, run:DIR, text:ENC, hybrid:FILE.yaml, llm:RANKER")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--user", help="raw user id")
    who.add_argument("--history", metavar="ID,ID,…", help="a history of raw item ids, oldest first (--scorer form)")
    who.add_argument("--history-file", metavar="FILE", help="a file of raw item ids, oldest first (--scorer form)")
    p.add_argument("--k", "--top", dest="top", metavar="K", type=int_at_least(1), help="how many items to show (default 10)")
    p.add_argument("--explain", action="store_true", help="each hybrid component's score of each item (--scorer form)")
    p.add_argument("--candidates", type=int_at_least(0),
                   help="rank only the retriever's top N unseen items (--scorer form; llm:* scorers: default 20)")
    p.add_argument("--retriever", help="the first stage for --candidates (--scorer form; default itemknn)")
    p.add_argument("--method", help=f"{' | '.join(RANKERS.names())} (default verbalizer; the --method form)")
    p.add_argument("--llm", help="LLM backend (hf:smollm2-135m, openai:URL#model)")
    p.add_argument("--protocol", help=f"candidate protocol (--method form; default {DEFAULT_PROTOCOL}; sampled:N, "
                   "nir, candidates:FILE)")
    p.add_argument("--seed", type=seed_arg, help="seed for sampled candidates, the scorer and the ranker")
    p.add_argument("--json", action="store_true",
                   help='print {"user", "items": [{"item_id", "title", "score", "components"?}], …}')
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


def build_recommender_config(args: argparse.Namespace) -> RecommenderConfig:
    from llmrec.config import load_config
    from llmrec.pipelines.recommend import RecommenderConfig

    base: dict[str, Any] = {}
    for key in ("dataset", "scorer", "llm", "seed", "candidates", "retriever"):
        value = getattr(args, key, None)
        if value is not None:
            base[key] = value
    return load_config(RecommenderConfig, args.config, args.overrides, base=base)


def _check_form(args: argparse.Namespace) -> None:
    """Options of one form given to the other: a one-line error naming them."""
    from llmrec.errors import ConfigError

    wrong = METHOD_ONLY if args.scorer else SCORER_ONLY
    given = [f"--{k.replace('_', '-')}" for k in wrong if getattr(args, k, None) not in (None, False)]
    if given:
        form = "--scorer" if args.scorer else "--method"
        other = "the --method form (LLM rankers over a candidate protocol)" if args.scorer else "--scorer"
        raise ConfigError(f"{', '.join(given)} cannot be used in the {form} form: {' '.join(given)} needs {other}")


def run(args: argparse.Namespace) -> int:
    from llmrec.pipelines.recommend import recommend

    _check_form(args)
    if args.scorer:
        return run_scorer(args)
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


def run_scorer(args: argparse.Namespace) -> int:
    """The --scorer form: fit the scorer, answer one query, print it."""
    from pathlib import Path

    from llmrec.errors import ConfigError
    from llmrec.pipelines.recommend import Recommender

    if args.user is None and args.history is None and args.history_file is None:
        raise ConfigError("recommend --scorer needs --user U, --history ID,ID,… or --history-file F")
    k = args.top or 10
    if args.history_file is not None:
        try:
            history: str | None = Path(args.history_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--history-file {args.history_file}: cannot read it ({type(e).__name__}: {e})") from None
    else:
        history = args.history
    cfg = build_recommender_config(args)
    rec = Recommender.load(cfg, args.data_dir)
    query = rec.query_user(args.user, k) if args.user is not None else rec.query_history(history, k)
    result = rec.recommend(query)
    if args.explain and not rec.is_hybrid:
        print(f"llmrec: note: --explain: scorer {cfg.scorer} is not a hybrid: it has no components to show",
              file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(components=args.explain), indent=2, ensure_ascii=False))
        return 0
    print_recommendations(result, cfg, explain=args.explain)
    return 0


def print_recommendations(result: UserRecommendations, cfg: RecommenderConfig, explain: bool) -> None:
    who = f"User {result.user}" if result.user is not None else "A history of item ids (a user the data does not know)"
    print(f"{who} · {cfg.dataset} · scorer {cfg.scorer}")
    recent = result.history[-10:]
    print(f"\nHistory: {len(result.history)} items; the last {len(recent)}, oldest first:")
    for item_id, title in recent:
        print(f"  - {title}  [{item_id}]")
    print(f"\nTop {len(result.items)} of {result.n_ranked} items ranked (the history excluded):")
    names = list(dict.fromkeys(n for it in result.items for n in (it.components or {})))  # the hybrid's order
    if explain and names:
        print("        score" + "".join(f"{n[:12]:>13}" for n in names) + "  title")
    for r, it in enumerate(result.items, 1):
        if explain and names:
            cells = "".join(f"{it.components[n]:>13.4g}" if n in (it.components or {}) else f"{'':>13}" for n in names)
            print(f"  {r:>2}. {it.score:>8.4g}{cells}  {it.title}  [{it.item_id}]")
        else:
            print(f"  {r:>2}. {it.title}  [{it.item_id}]  (score {it.score:.4g})")

