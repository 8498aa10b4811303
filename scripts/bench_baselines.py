"""Baseline results: random, popularity, item-kNN and BPR-MF on ml-100k and beauty, `full` and `sampled:100`.

Writes eval/results/baselines.{json,md}.   Run: .venv/bin/python scripts/bench_baselines.py
"""

from __future__ import annotations

import time
from pathlib import Path

from llmrec.data import leave_one_out, load_dataset
from llmrec.data.candidates import make_candidates
from llmrec.evaluation import evaluate
from llmrec.evaluation.report import write_results
from llmrec.scorers import ScorerContext, build_scorer

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
COLUMNS = ["dataset", "protocol", "scorer", "HR@10", "NDCG@10", "MRR", "AUC", "n_users", "candidates_hash"]


def main() -> None:
    rows = []
    for name in ("ml-100k", "beauty"):
        ds = load_dataset(name)
        split = leave_one_out(ds)
        for scorer_name in ("random", "pop", "itemknn", "bpr"):
            t = time.perf_counter()
            scorer = build_scorer(scorer_name, ScorerContext(seed=SEED))
            scorer.fit(ds, split)
            fit_s = time.perf_counter() - t
            for protocol in ("full", "sampled:100"):
                cands = make_candidates(ds, split, protocol, "test", SEED)
                res = evaluate(scorer, ds, split, cands, progress=False)
                m = res.metrics
                rows.append({"dataset": name, "protocol": protocol, "scorer": scorer_name,
                             "HR@10": m["HR@10"], "NDCG@10": m["NDCG@10"], "MRR": m["MRR"], "AUC": m["AUC"],
                             "n_users": len(cands.users), "candidates_hash": res.candidates_hash,
                             "fit_s": round(fit_s, 1), "eval_s": round(res.seconds, 2)})
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()})
    write_results(
        ROOT / "eval" / "results" / "baselines",
        "Baselines on ml-100k and beauty",
        rows,
        "leave-one-out by time (last item test, second-to-last validation; models fit on the rest); `full` = "
        "rank all items with the user's history masked; `sampled:100` = 100 uniform negatives outside the "
        "user's sequence, sampled once with seed 0, the target inserted (101 candidates); ties pessimistic; "
        "scorer seed 0; BPR: dim 64, 40 epochs, Adam lr 0.005, l2 1e-5; item-kNN: cosine co-occurrence, all neighbours",
        "python scripts/bench_baselines.py",
        columns=COLUMNS,
        notes=["fit_s / eval_s in the JSON are wall times on a shared 2-core machine, not a speed benchmark "
               "(see bench_eval.md)."],
    )


if __name__ == "__main__":
    main()
