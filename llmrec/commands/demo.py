"""`llmrec demo`: the main job on embedded defaults, for one ml-100k user.

1. trains (once; cached) a small SASRec on the training part of the leave-one-out split;
2. fuses SASRec, item-kNN and zero-shot MiniLM text similarity into a hybrid whose weights are chosen on the
   validation split, and re-ranks its top 20 with the embedded LLM in one forward pass (LlamaRec-style
   verbalizer);
3. asks the LLM for the user's preference summary (NIR step 1);
4. prints the user's recent history, the summary, and the hybrid top 10 with each component's score, and —
   after ranking — where the held-out next movie landed; plus every component's full-ranking quality over all
   users, so the example can be read against the averages.

Everything it trains or computes is cached under the llmrec cache folder; a second run takes seconds.
"""

from __future__ import annotations

import argparse
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    from llmrec.commands._common import add_data_args, int_at_least

    p = sub.add_parser("demo", help="run the main job on embedded defaults (ml-100k)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", help="registered name or path with titles (default ml-100k)")
    p.add_argument("--user", default="1", help="raw user id to show (default 1)")
    p.add_argument("--llm", default=None, help="LLM backend (default hf:smollm2-135m; or openai:URL#model)")
    p.add_argument("--epochs", type=int_at_least(1), default=10, help="SASRec training epochs (default 10; cached per value)")
    p.add_argument("--top", type=int_at_least(1), default=10, help="recommendations to show")
    p.add_argument("--rerank", type=int_at_least(0), default=20, help="hybrid top N re-ranked by the LLM (0 = no LLM re-ranking)")
    p.add_argument("--no-llm", action="store_true", help="skip the LLM (summary and re-ranking)")
    add_data_args(p)
    p.set_defaults(func=run)


def _say(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from transformers.utils import logging as hf_logging

    from llmrec.commands._common import print_result
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates
    from llmrec.errors import LLMRecError
    from llmrec.evaluation import evaluate
    from llmrec.io import cache_dir
    from llmrec.parsing import display_title
    from llmrec.scorers import ScorerContext
    from llmrec.scorers.hybrid import ComponentConfig, HybridConfig, HybridScorer, RerankConfig
    from llmrec.training import TrainConfig, train
    from llmrec.training.loop import stages_from_objectives
    from llmrec.types import ScoreBatch

    hf_logging.disable_progress_bar()  # model-loading bars would bury the demo's output
    t0 = time.perf_counter()
    ds = load_dataset(args.dataset, args.data_dir)
    split = leave_one_out(ds)
    if not ds.items.has_titles:
        raise LLMRecError(f"demo: data set {ds.name!r} has no titles; use ml-100k or a folder with items.csv")
    st = ds.stats()
    print(f"== {ds.name}: {st['users']} users, {st['items']} items, {st['interactions']} interactions "
          f"(leave-one-out by time; models train on all but each user's last two items)")

    # 1. a small SASRec, trained once per (data, split, epochs) and cached
    run_dir = cache_dir() / "demo" / f"{ds.name}-{split.hash}-sasrec-e{args.epochs}"
    if not (run_dir / "result.json").is_file():
        _say(f"training SASRec for {args.epochs} epochs (once; cached in {run_dir})")
        # what `llmrec pretrain --model sasrec --objective next_item --set model_options.dropout=0.2` runs
        cfg = TrainConfig(dataset=args.dataset, model="sasrec", stages=stages_from_objectives("next_item", args.epochs),
                          model_options={"dropout": 0.2})
        print_result(train(cfg, run_dir, ds, split).to_dict(), as_json=False)

    # 2. the hybrid: weights chosen on validation, LLM re-ranking of the top N
    use_llm = not args.no_llm and args.rerank > 0
    cfg = HybridConfig(
        components=[ComponentConfig("sasrec", f"run:{run_dir}"), ComponentConfig("itemknn", "itemknn"),
                    ComponentConfig("text", "text:minilm")],
        fusion="learned", grid_step=0.1, name="hybrid",
        rerank=RerankConfig("llm:verbalizer", top_n=args.rerank) if use_llm else None,
    )
    hybrid = HybridScorer(cfg, ScorerContext(seed=0, llm=args.llm))
    hybrid.bind_protocol("full")
    _say("fitting the hybrid (component weights by validation NDCG@10)")
    hybrid.fit(ds, split)

    # quality of each component and of the fusion over all users (full ranking, first stage only)
    full = make_candidates(ds, split, "full", "test")
    quality = {}
    for name, comp in hybrid.components.items():
        quality[name] = evaluate(comp, ds, split, full, ks=(10,), progress=False).metrics
    rerank, hybrid.reranker = hybrid.reranker, None  # all-users numbers without spending LLM time on 943 users
    quality["hybrid (fusion)"] = evaluate(hybrid, ds, split, full, ks=(10,), progress=False).metrics
    hybrid.reranker = rerank

    # 3. this user
    u = ds.internal_user(args.user)
    users = np.array([u])
    hist = split.history(users, "test")  # (1, T): everything before the held-out item
    held = int(split.targets(users, "test")[0])
    batch = ScoreBatch(torch.from_numpy(users), torch.from_numpy(hist), None, "test")
    scores = hybrid.score(batch)[0]
    comps = {k: v[0] for k, v in hybrid.last_components.items()}
    order = torch.argsort(scores, descending=True, stable=True)[: args.top].tolist()
    titles = [""] + [display_title(ds.items.title(i)) for i in range(1, ds.n_items + 1)]

    summary = None
    if not args.no_llm:
        from llmrec.llm import make_backend
        from llmrec.rankers import UserContext, make_ranker

        backend = hybrid.reranker.backend if hybrid.reranker is not None else make_backend(args.llm, cache=True)
        nir = make_ranker("nir", backend, {"item_kind": ds.domain.item_kind, "action": ds.domain.action})
        cands = [titles[i] for i in order]
        summary = nir.summarise([UserContext(u, tuple(titles[i] for i in hist[0] if i > 0))], [cands])[0]

    recent = [titles[i] for i in hist[0] if i > 0][-10:]
    print(f"\n== user {args.user}: {int((hist[0] > 0).sum())} movies before the held-out one; the last 10:")
    for t in recent:
        print(f"   {t}")
    if summary is not None:
        print(f"\n== preference summary ({getattr(backend, 'name', 'LLM')}, NIR step 1):\n   {summary}")
    w = ", ".join(f"{k} {v:.1f}" for k, v in hybrid.learned.get("weights", {}).items())
    stage = f"; top {args.rerank} re-ranked by llm:verbalizer" if hybrid.reranker is not None else ""
    print(f"\n== hybrid top {args.top} (weighted z-score fusion: {w}{stage})")
    names = list(comps)
    llm_col = hybrid.reranker is not None
    head = "   #  " + "".join(f"{n:>9}" for n in names) + ("      llm" if llm_col else "") + "  title"
    print(head)
    llm_scores = {}
    if llm_col and getattr(hybrid.reranker, "last_results", None):
        top_n = torch.topk(hybrid.last_first_stage[0], min(args.rerank, ds.n_items)).indices.tolist()
        res = hybrid.reranker.last_results[0]
        llm_scores = {item: float(s) for item, s in zip(top_n, res.scores)}
    for k, i in enumerate(order, 1):
        cells = "".join(f"{comps[n][i].item():>9.3f}" for n in names)
        if llm_col:
            cells += f"{llm_scores[i]:>9.2f}" if i in llm_scores else f"{'':>9}"
        mark = "   <- the held-out next movie" if i == held else ""
        print(f"  {k:>2}. {cells}  {titles[i]}{mark}")
    ranked = torch.argsort(scores, descending=True, stable=True)
    seen = set(hist[0].tolist())
    pos = [i for i in ranked.tolist() if i not in seen and i != 0].index(held) + 1
    print(f"   held-out next movie: {titles[held]} (rank {pos} of {ds.n_items - len(seen - {0})}; shown after ranking)")

    print("\n== all users, full ranking (test):")
    for name, m in quality.items():
        print(f"   {name:<16} HR@10 {m['HR@10']:.4f}  NDCG@10 {m['NDCG@10']:.4f}")
    print(f"\n(demo took {time.perf_counter() - t0:.0f} s; cached work makes the next run faster)")
    return 0
