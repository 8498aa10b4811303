"""`llmrec demo`: the main job on embedded defaults — ml-100k statistics, one user's recent history, and the
top 10 of the baseline scorers (with titles), each checked against the user's held-out next movie."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_data_args

    p = sub.add_parser("demo", help="run the main job on embedded defaults (ml-100k)", description=__doc__)
    p.add_argument("--dataset", default="ml-100k", help="registered name or path (default ml-100k)")
    p.add_argument("--user", default="1", help="raw user id to show (default 1)")
    p.add_argument("--top", type=int, default=10, help="recommendations per method")
    add_data_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates
    from llmrec.evaluation import evaluate
    from llmrec.scorers import ScorerContext, build_scorer
    from llmrec.types import ScoreBatch

    ds = load_dataset(args.dataset, args.data_dir)
    split = leave_one_out(ds)
    st = ds.stats()
    print(f"== {ds.name}: {st['users']} users, {st['items']} items, {st['interactions']} interactions "
          f"(sequence length {st['seq_len_min']}–{st['seq_len_max']}, mean {st['seq_len_mean']:.1f})")
    u = ds.internal_user(args.user)
    hist = split.history(np.array([u]), "test")[0]
    hist = hist[hist > 0]
    target = int(split.targets(np.array([u]), "test")[0])
    print(f"\n== user {args.user}: {len(hist)} items before the held-out one; the last 10:")
    for i in hist[-10:]:
        print(f"   {ds.items.title(int(i))}")
    print(f"   (held out, next: {ds.items.title(target)})")
    full = make_candidates(ds, split, "full", "test")
    for spec in ("pop", "itemknn", "bpr"):
        scorer = build_scorer(spec, ScorerContext(seed=0))
        scorer.fit(ds, split)
        batch = ScoreBatch(torch.tensor([u]), torch.from_numpy(hist[None, :]), None, "test")
        scores = scorer.score(batch)[0].clone()
        scores[0] = -torch.inf
        scores[torch.from_numpy(hist)] = -torch.inf
        top = torch.topk(scores, args.top).indices.tolist()
        res = evaluate(scorer, ds, split, full, ks=(10,), progress=False)
        print(f"\n== {spec}: top {args.top} for user {args.user}   "
              f"[all users, full ranking: HR@10 {res.metrics['HR@10']:.4f}, NDCG@10 {res.metrics['NDCG@10']:.4f}]")
        for rank, i in enumerate(top, 1):
            mark = "  <- the held-out next movie" if i == target else ""
            print(f"   {rank:>2}. {ds.items.title(i)}  ({scores[i].item():.3f}){mark}")
    return 0
