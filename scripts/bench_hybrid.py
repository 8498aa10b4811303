"""The hybrid table (issue 13): does a fusion beat its best component? Each component alone, each fusion (rrf,
weighted, learned, ltr), over seeds, on ml-100k and beauty, full ranking.

    python scripts/bench_hybrid.py --smoke                                    # minutes: ml-100k, seed 0, under /tmp
    python scripts/bench_hybrid.py --datasets ml-100k beauty --seeds 0 1 2    # the committed table (hours)
    python scripts/bench_hybrid.py --datasets ml-100k --seeds 0 1 2 --llm     # + the tuned LLM, where it exists

Per data set and seed:
  1. SASRec trained with eval/configs/sasrec_<dataset>.yaml (seed overridden) into runs/hybrid-bench/<dataset>/
     sasrec-s<seed>; an interrupted training resumes, a finished one is reused;
  2. the components of eval/configs/hybrids/bench_<dataset>.yaml (the seed's SASRec swapped in) fitted once
     and shared by every row (BPR and the fold assignment take the seed);
  3. rows, each written to the JSON as soon as it is done (a rerun skips the rows already there): every
     component alone; rrf and weighted (equal weights); learned (weights on the validation targets); ltr
     (LightGBM LambdaRank over the retriever's top N, cross-fitted over validation users, with an ablation of
     its feature groups on out-of-fold validation NDCG@10); and, as ceilings, `oracle-weights` (the weighted
     fusion with weights chosen on test targets, never a method). With --llm (ml-100k, where the adapter
     folder exists): the two-stage `learned` + the tuned LLM (--llm-scorer, default the title-likelihood
     `llm:pointwise`, the ranker the tuning moved; `llm:verbalizer` stays at chance) re-ordering the top 20,
     blended with the first stage by a λ learned on 200 validation users (`rerank.mix: learn`), and `ltr`
     with the LLM's score of the retriever's top 20 as a feature.
Test: leave-one-out, full ranking (every item, the history masked), ties pessimistic. The paired tests compare
each row with the best single component (by mean test NDCG@10 over seeds: the strictest reference) on each test
user's NDCG@10 averaged over the seeds both rows ran (`llmrec.evaluation.compare.paired_tests`); 95% CIs are
bootstrap CIs over users of those seed-averaged values. Each row's per-user test ranks go to
eval/results/hybrid_ranks/<dataset>/<method>-s<seed>.npy (uint16), which the paired tests read.
Writes eval/results/hybrid.json and eval/results/hybrid.md. Each row holds /tmp/llmrec-bench.lock (--no-lock).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LOCK = "/tmp/llmrec-bench.lock"
FUSIONS = ["rrf", "weighted", "learned", "ltr"]
LLM_SPEC = "hf:smollm2-135m+{adapter}"
METRICS = ("HR@10", "NDCG@10", "MRR")


def bench_lock(enabled: bool):
    """/tmp/llmrec-bench.lock unless --no-lock: one benchmark on the cores at a time."""
    from llmrec.io import file_lock

    return file_lock(LOCK, enabled)


class Prefitted:
    """A fitted component shared by every row of a seed: `fit` does nothing (the hybrid calls it again)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.batch_size = getattr(inner, "batch_size", None)

    def fit(self, dataset, split) -> None:
        pass

    def score(self, batch):
        return self.inner.score(batch)

    def report(self) -> dict:
        return dict(self.inner.report()) if hasattr(self.inner, "report") else {}


# ------------------------------------------------------------------------------------------------- settings


def settings_for(ds: str, args: argparse.Namespace) -> dict[str, Any]:
    """The hybrid template and the knobs of a run (smaller everywhere under --smoke)."""
    from llmrec.scorers.hybrid import load_hybrid_config

    cfg = load_hybrid_config(ROOT / "eval" / "configs" / "hybrids" / f"bench_{ds}.yaml")
    comps = []
    for c in cfg.components:
        if c.scorer.startswith("text:") and "+" in c.scorer:
            adapter = ROOT / c.scorer.split("+", 1)[1].split("@")[0]
            if not adapter.is_dir():  # the shipped adapter is missing: the frozen encoder instead
                c = replace(c, scorer="text:minilm")
        if args.smoke and c.scorer == "bpr":
            c = replace(c, options={**c.options, "epochs": 5})
        comps.append(c)
    ltr = cfg.ltr
    if args.smoke:
        ltr = replace(ltr, folds=3, max_rounds=100)
    return {"template": replace(cfg, components=comps, ltr=ltr), "sasrec_epochs": 2 if args.smoke else None}


def train_sasrec(ds: str, seed: int, runs: Path, dataset, split, epochs: int | None, threads: int) -> Path:
    """SASRec for this seed (resumed when interrupted, reused when done)."""
    from llmrec.config import load_config
    from llmrec.training.loop import TrainConfig, train

    run_dir = runs / ds / f"sasrec-s{seed}"
    if (run_dir / "result.json").is_file():
        return run_dir
    cfg = load_config(TrainConfig, ROOT / "eval" / "configs" / f"sasrec_{ds}.yaml",
                      [f"seed={seed}", f"threads={threads}"])
    if epochs is not None:
        cfg.stages = [replace(st, epochs=epochs) for st in cfg.stages]
    print(f"== {ds} seed {seed}: training SASRec into {run_dir}", file=sys.stderr, flush=True)
    train(cfg, run_dir, dataset=dataset, split=split, progress=False)
    return run_dir


def build_components(template, run_dir: Path, seed: int, dataset, split) -> tuple[Any, dict[str, Prefitted]]:
    from llmrec.scorers import ScorerContext, build_scorer

    comps = [replace(c, scorer=f"run:{run_dir}") if c.name == "sasrec" else c for c in template.components]
    cfg = replace(template, components=comps)
    fitted = {}
    for c in comps:
        t = time.perf_counter()
        s = build_scorer(c.scorer, ScorerContext(seed=seed, options=dict(c.options)))
        s.fit(dataset, split)
        print(f"   component {c.name} ({c.scorer}) fitted in {time.perf_counter() - t:.1f} s", file=sys.stderr,
              flush=True)
        fitted[c.name] = Prefitted(s)
    return cfg, fitted


# ------------------------------------------------------------------------------------------------- one row


def methods_for(ds: str, cfg, args: argparse.Namespace) -> list[tuple[str, str]]:
    """(method, kind) rows of a data set, in table order."""
    rows = [(c.name, "component") for c in cfg.components] + [(f, "fusion") for f in FUSIONS]
    rows.append(("oracle-weights", "oracle"))
    if args.llm and ds == "ml-100k" and (ROOT / args.llm_adapter).is_dir():
        rows += [("ltr-llm", "fusion"), ("two-stage-llm", "fusion")]
    return rows


def run_row(method: str, kind: str, cfg, comps: dict, dataset, split, seed: int, args) -> tuple[Any, dict]:
    """Fit and evaluate one row on the test targets; (EvalResult, extra fields for the JSON)."""
    from llmrec.data.candidates import make_candidates
    from llmrec.evaluation import evaluate
    from llmrec.scorers import ScorerContext
    from llmrec.scorers.hybrid import HybridScorer, RerankConfig

    extra: dict[str, Any] = {}
    cands = make_candidates(dataset, split, "full", "test", seed)
    t = time.perf_counter()
    if kind == "component":
        scorer = comps[method]
        extra["scorer"] = next(c.scorer for c in cfg.components if c.name == method)
    else:
        llm = LLM_SPEC.format(adapter=args.llm_adapter)
        opts = {"history_len": 10, "backend": {"num_threads": args.threads, "batch_size": 16}}
        rerank = RerankConfig(scorer=args.llm_scorer, top_n=20, llm=llm, options=opts)
        hcfg = {
            "rrf": replace(cfg, fusion="rrf", name="hybrid-rrf"),
            "weighted": replace(cfg, fusion="weighted", name="hybrid-weighted"),
            "learned": replace(cfg, fusion="learned", name="hybrid-learned"),
            "ltr": replace(cfg, fusion="ltr", name="hybrid-ltr"),
            "oracle-weights": replace(cfg, fusion="learned", name="oracle-weights", learn_users=2000),
            "two-stage-llm": replace(cfg, fusion="learned", name="two-stage-llm",
                                     rerank=replace(rerank, mix="learn", mix_users=200)),
            "ltr-llm": replace(cfg, fusion="ltr", name="ltr-llm", rerank=rerank),
        }[method]
        scorer = HybridScorer(hcfg, ScorerContext(seed=seed), components=comps)
        scorer.bind_protocol("full")
        if method == "oracle-weights":  # weights chosen on (a sample of) the TEST targets: a ceiling, not a method
            scorer.learn_weights(dataset, split, "full", phase="test")
        scorer.fit(dataset, split)
        extra["scorer"] = f"hybrid ({hcfg.fusion}{', + LLM re-ranker' if hcfg.rerank else ''})"
        rep = scorer.report()
        if "learned" in rep:
            extra["weights"] = rep["learned"]["weights"]
            extra["valid_NDCG@10"] = rep["learned"]["valid_NDCG@10"]
        if "ltr" in rep:
            extra["ltr"] = rep["ltr"]
            extra["valid_NDCG@10"] = rep["ltr"]["valid_NDCG@10_oof"]
            if not args.no_ablation:
                ta = time.perf_counter()
                extra["ablation"] = scorer.ltr.ablation()
                extra["ablation_seconds"] = round(time.perf_counter() - ta, 1)
        if hcfg.rerank is not None:
            extra["llm"] = hcfg.rerank.llm
            extra["llm_scorer"] = hcfg.rerank.scorer
    fit_s = time.perf_counter() - t
    res = evaluate(scorer, dataset, split, cands, ks=(10, 20), progress=False)
    extra["fit_seconds"] = round(fit_s, 1)
    extra["eval_seconds"] = round(res.seconds, 1)
    rep = res.scorer_report or {}
    if kind != "component" and "rerank" in rep:
        extra["rerank_report"] = {k: rep["rerank"].get("report", {}).get(k) for k in ("parse_rate", "wall_s_per_user")}
        if rep["rerank"].get("mix_learned"):
            extra["mix_learned"] = rep["rerank"]["mix_learned"]
    return res, extra


def save_ranks(path: Path, ranks) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as f:
        np.save(f, np.minimum(np.where(np.isfinite(ranks), ranks, 65535), 65535).astype(np.uint16))
    Path(f.name).replace(path)


# ------------------------------------------------------------------------------------------------- the report


# each LLM row and the fusion it extends: the paired test between them is the LLM's own contribution
LLM_COUNTERPART = {"ltr-llm": "ltr", "two-stage-llm": "learned"}


def per_user_ndcg(ranks_dir: Path, ds: str, method: str, seeds: list[int]):
    import numpy as np

    from llmrec.evaluation.metrics import per_user_metric

    return np.mean([per_user_metric(np.load(ranks_dir / ds / f"{method}-s{s}.npy").astype(np.float64), "NDCG@10")
                    for s in seeds], axis=0)


def summarise(data: dict, ranks_dir: Path) -> dict[str, Any]:
    """Per data set: each method's mean ± std over seeds, seed-averaged per-user CI, paired test against the best
    component, the goal verdict, the ltr feature importances and ablation, and the per-user oracle."""
    import numpy as np

    from llmrec.evaluation.compare import bootstrap_ci, paired_tests

    out: dict[str, Any] = {}
    cells = data.get("cells", [])
    for ds in dict.fromkeys(c["dataset"] for c in cells):
        dc = [c for c in cells if c["dataset"] == ds]
        methods = list(dict.fromkeys(c["method"] for c in dc))
        by = {m: {c["seed"]: c for c in dc if c["method"] == m} for m in methods}
        comps = [m for m in methods if next(iter(by[m].values()))["kind"] == "component"]
        if not comps:
            continue
        best = max(comps, key=lambda m: statistics.mean(c["NDCG@10"] for c in by[m].values()))
        rows = []
        for m in methods:
            seeds = sorted(by[m])
            row: dict[str, Any] = {"method": m, "kind": by[m][seeds[0]]["kind"], "seeds": seeds}
            for k in METRICS:
                vals = [by[m][s][k] for s in seeds]
                row[k] = statistics.mean(vals)
                row[f"{k} std"] = statistics.stdev(vals) if len(vals) > 1 else None
            v = per_user_ndcg(ranks_dir, ds, m, seeds)
            row["NDCG@10 CI"] = list(bootstrap_ci(v))
            vals = [by[m][s].get("valid_NDCG@10") for s in seeds]
            row["valid_NDCG@10"] = statistics.mean(vals) if all(x is not None for x in vals) else None
            shared = [s for s in seeds if s in by[best]]
            if m != best and shared:
                row["vs_best"] = {"seeds": shared, **paired_tests(per_user_ndcg(ranks_dir, ds, m, shared),
                                                                  per_user_ndcg(ranks_dir, ds, best, shared))}
            rows.append(row)
        ltr_cells = list(by.get("ltr", {}).values())
        imp: dict[str, float] = {}
        groups: dict[str, float] = {}
        ablation: dict[str, list[float]] = {}
        for c in ltr_cells:
            for k, v in c["ltr"]["importance_gain_share"].items():
                imp[k] = imp.get(k, 0.0) + v / len(ltr_cells)
            for k, v in c["ltr"]["group_gain_share"].items():
                groups[k] = groups.get(k, 0.0) + v / len(ltr_cells)
            for k, v in (c.get("ablation") or {}).items():
                ablation.setdefault(k, []).append(v)
        oracle = []
        for s in sorted({c["seed"] for c in dc}):
            have = [m for m in comps if s in by[m]]
            if len(have) == len(comps):
                oracle.append(float(np.max([per_user_ndcg(ranks_dir, ds, m, [s]) for m in comps], axis=0).mean()))
        # does the LLM add anything? each LLM row against the same fusion without the LLM, on the seeds both ran
        llm_vs = []
        for m, base in LLM_COUNTERPART.items():
            shared = sorted(set(by.get(m, {})) & set(by.get(base, {})))
            if shared:
                llm_vs.append({"method": m, "counterpart": base, "seeds": shared,
                               "NDCG@10": statistics.mean(by[m][s]["NDCG@10"] for s in shared),
                               "counterpart NDCG@10": statistics.mean(by[base][s]["NDCG@10"] for s in shared),
                               **paired_tests(per_user_ndcg(ranks_dir, ds, m, shared),
                                              per_user_ndcg(ranks_dir, ds, base, shared))})
        fusion_rows = [r for r in rows if r["kind"] == "fusion" and "vs_best" in r]
        met = [r["method"] for r in fusion_rows if r["vs_best"]["diff"] > 0 and r["vs_best"]["p_bootstrap"] < 0.05]
        out[ds] = {
            "best_component": best, "rows": rows, "goal_met_by": met,
            "ltr_importance": dict(sorted(imp.items(), key=lambda x: -x[1])),
            "ltr_group_importance": dict(sorted(groups.items(), key=lambda x: -x[1])),
            "ltr_ablation_valid_oof": {k: statistics.mean(v) for k, v in ablation.items()},
            "ltr_details": [{"seed": c["seed"], **{k: c["ltr"][k] for k in (
                "valid_NDCG@10_oof", "valid_NDCG@10_retriever", "target_in_top_n", "train_groups", "best_rounds",
                "text_source", "recency")}} for c in ltr_cells],
            "oracle_per_user_best_component": statistics.mean(oracle) if oracle else None,
            "llm_details": [{"seed": c["seed"], "method": c["method"], "llm": c.get("llm"),
                             "scorer": c.get("llm_scorer", "llm:verbalizer"),
                             "mix": (c.get("mix_learned") or {}).get("mix"),
                             "llm_gain_share": (c.get("ltr") or {}).get("group_gain_share", {}).get("llm"),
                             "s_per_user": (c.get("rerank_report") or {}).get("wall_s_per_user")}
                            for c in dc if c["method"] in LLM_COUNTERPART],
            "llm_vs_counterpart": llm_vs,
        }
    return out


def _pm(row: dict, k: str) -> str:
    sd = row.get(f"{k} std")
    return f"{row[k]:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")


def markdown(data: dict, summary: dict) -> str:
    lines = ["# Hybrids: does a fusion beat its best component?", "",
             "Protocol: leave-one-out by time, test = each user's last item, **full ranking** (every item; the "
             "user's history masked), ties pessimistic. Means ± std over the seeds (each seed: its own SASRec, BPR "
             "and fold assignment); the CI is a 95% bootstrap CI over users of each user's NDCG@10 averaged over "
             "the seeds; the paired test compares that per-user value with the best single component's "
             "(two-sided paired bootstrap, and a paired t-test).", "",
             "Reproduce the whole table: `python scripts/bench_hybrid.py --datasets "
             + " ".join(dict.fromkeys(c["dataset"] for c in data.get("cells", [])))
             + " --seeds " + " ".join(str(x) for x in sorted({c["seed"] for c in data.get("cells", [])}))
             + (" --llm" if any(c["method"] in LLM_COUNTERPART for c in data.get("cells", [])) else "")
             + "` (rows merge into the JSON as they finish; a rerun skips the rows already there, so the table "
             f"grows over several commands — the last was `{data.get('command', '')}`).", ""]
    m = data.get("machine") or {}
    if m:
        lines += [f"Machine: {m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')}, {m.get('date')}.", ""]
    for ds, s in summary.items():
        st = data.get("settings", {}).get(ds, {})
        best = s["best_component"]
        lines += [f"## {ds}", "",
                  f"Components: {', '.join(f'`{n}` ({sc})' for n, sc in st.get('components', []))}. "
                  f"`ltr`: {st.get('ltr', '')}.", "",
                  f"| method | kind | seeds | test NDCG@10 | NDCG@10 95% CI (users) | HR@10 | MRR | Δ NDCG@10 vs "
                  f"{best} [95% CI] | p (bootstrap) | p (t-test) | valid NDCG@10 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in s["rows"]:
            vs = r.get("vs_best")
            cmp_ = "(reference) | |" if r["method"] == best else "| |"
            if vs:
                p_boot = "<0.0005" if vs["p_bootstrap"] == 0 else f"{vs['p_bootstrap']:.3g}"
                cmp_ = (f"{vs['diff']:+.4f} [{vs['diff_ci_low']:+.4f}, {vs['diff_ci_high']:+.4f}] | {p_boot} | "
                        f"{vs['p_ttest']:.3g}")
            lo, hi = r["NDCG@10 CI"]
            valid = f"{r['valid_NDCG@10']:.4f}" if r.get("valid_NDCG@10") is not None else ""
            lines.append(f"| {r['method']} | {r['kind']} | {len(r['seeds'])} | {_pm(r, 'NDCG@10')} | "
                         f"[{lo:.4f}, {hi:.4f}] | {_pm(r, 'HR@10')} | {_pm(r, 'MRR')} | {cmp_} | {valid} |")
        goal = s["goal_met_by"]
        lines += ["", f"**Goal (a fusion above `{best}` with p < 0.05): "
                  + (f"met by {', '.join(goal)}.**" if goal else "not met.**"), ""]
        lines += ["valid NDCG@10: what the fusion chose on — `learned`: its weights' validation NDCG@10 (in "
                  "sample); `ltr`: out-of-fold (each user scored by a combiner that never trained or "
                  "early-stopped on that user); `oracle-weights`: chosen on test targets, a ceiling for static "
                  "weights, not a method.", ""]
        if s["ltr_details"]:
            lines += ["### ltr: what the combiner learned", "",
                      "| seed | valid NDCG@10 out-of-fold | retriever alone (same users) | target in top N | "
                      "training groups | best rounds per fold | text | recency |", "|---|---|---|---|---|---|---|---|"]
            for d in s["ltr_details"]:
                lines.append(f"| {d['seed']} | {d['valid_NDCG@10_oof']:.4f} | {d['valid_NDCG@10_retriever']:.4f} | "
                             f"{d['target_in_top_n']:.3f} | {d['train_groups']} | {d['best_rounds']} | "
                             f"{d['text_source']} | {d['recency']} |")
            lines += ["", "Feature importance (LightGBM gain, share of the total, summed over the fold models, "
                      "mean over seeds): by group " + ", ".join(f"{k} {v:.3f}" for k, v in s["ltr_group_importance"].items())
                      + "; by feature " + ", ".join(f"`{k}` {v:.3f}" for k, v in s["ltr_importance"].items()) + ".", ""]
        if s["ltr_ablation_valid_oof"] or s["oracle_per_user_best_component"] is not None:
            lines += ["### Ablation and ceilings", ""]
            if s["ltr_ablation_valid_oof"]:
                lines += ["`ltr` refitted without each feature group (same folds; out-of-fold validation NDCG@10, "
                          "mean over seeds): " + ", ".join(f"{k} {v:.4f}" for k, v in s["ltr_ablation_valid_oof"].items())
                          + "."]
            orc = [r for r in s["rows"] if r["method"] == "oracle-weights"]
            if orc:
                lines.append(f"Oracle static mix (weighted z-scores, weights chosen on ≤ 2000 test targets): test "
                             f"NDCG@10 {orc[0]['NDCG@10']:.4f}.")
            if s["oracle_per_user_best_component"] is not None:
                lines.append(f"Per-user oracle (each user's best component, chosen with the test target): "
                             f"{s['oracle_per_user_best_component']:.4f} — the headroom any per-user mix of these "
                             f"components has.")
            lines.append("")
        if s.get("llm_details"):
            lines += ["### The tuned LLM in the hybrid", "",
                      "`two-stage-llm`: the `learned` fusion's top 20 re-ordered by the LLM, blended with the fusion "
                      "by λ chosen on 200 validation users; `ltr-llm`: `ltr` with the LLM's score of the "
                      "retriever's top 20 as a feature.", "",
                      "| seed | row | LLM | ranker | λ (blend) | LLM feature gain share | s/user |",
                      "|---|---|---|---|---|---|---|"]
            for d in s["llm_details"]:
                gain = f"{d['llm_gain_share']:.3f}" if d["llm_gain_share"] is not None else ""
                spu = f"{d['s_per_user']:.2f}" if d["s_per_user"] is not None else ""
                lines.append(f"| {d['seed']} | {d['method']} | `{d['llm']}` | `{d['scorer']}` | "
                             f"{'' if d['mix'] is None else d['mix']} | {gain} | {spu} |")
            lines.append("")
        if s.get("llm_vs_counterpart"):
            lines += ["What the LLM adds: each LLM row against the same fusion without the LLM, on the seeds both "
                      "ran (per-user NDCG@10 averaged over those seeds; paired bootstrap).", "",
                      "| row | without the LLM | seeds | NDCG@10 with | NDCG@10 without | Δ [95% CI] | p (bootstrap) |",
                      "|---|---|---|---|---|---|---|"]
            for d in s["llm_vs_counterpart"]:
                p_boot = "<0.0005" if d["p_bootstrap"] == 0 else f"{d['p_bootstrap']:.3g}"
                lines.append(f"| {d['method']} | {d['counterpart']} | {d['seeds']} | {d['NDCG@10']:.4f} | "
                             f"{d['counterpart NDCG@10']:.4f} | {d['diff']:+.4f} [{d['diff_ci_low']:+.4f}, "
                             f"{d['diff_ci_high']:+.4f}] | {p_boot} |")
            lines.append("")
    lines += ["## Selection hygiene", "",
              "Fusions learn on validation targets only; test targets are never read (except `oracle-weights`, "
              "labelled). `ltr` is cross-fitted over users (K folds; within each fold's training users a share "
              "chooses the round count), so no user's validation score comes from a combiner trained or "
              "early-stopped on that user; its test scores are the mean of the K fold models. What remains: "
              "SASRec (and the shipped MiniLM adapter) were early-stopped / selected on validation NDCG@10 over "
              "all validation users — the same users the combiner learns from. Their validation scores are "
              "therefore slightly optimistic relative to test, and a combiner may lean on them a little more than "
              "test data would justify; the cross-fit cannot undo a component's own selection. Removing it needs "
              "the training loop to early-stop on a user subset disjoint from the combiner's (not available in "
              "`llmrec.training` today). `learned` picks its weights on the same validation users it reports.", ""]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["ml-100k", "beauty"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--smoke", action="store_true",
                    help="tiny and quick: ml-100k, seed 0, SASRec 2 epochs, BPR 5, 3 folds; writes under /tmp")
    ap.add_argument("--llm", action="store_true", help="also the tuned-LLM rows (ml-100k, if --llm-adapter exists)")
    ap.add_argument("--llm-adapter", default="adapters/ml-100k-smollm2-lora")
    ap.add_argument("--llm-scorer", default="llm:pointwise", choices=["llm:pointwise", "llm:verbalizer"],
                    help="the tuned LLM's ranker in the --llm rows (default: title likelihood)")
    ap.add_argument("--no-ablation", action="store_true", help="skip refitting ltr without each feature group")
    ap.add_argument("--runs", default=None, help="SASRec runs (default runs/hybrid-bench)")
    ap.add_argument("--out", default=None, help="results stem (default eval/results/hybrid)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (SASRec training and scoring)")
    ap.add_argument("--no-lock", action="store_true")
    args = ap.parse_args()
    import torch

    from llmrec.evaluation.report import machine_info
    from llmrec.io import atomic_write_text, update_json
    from llmrec.training.loop import load_data

    if args.smoke:
        root = Path(tempfile.gettempdir()) / "llmrec-hybrid-smoke"
        args.datasets, args.seeds = ["ml-100k"], [0]
        args.runs = args.runs or str(root / "runs")
        args.out = args.out or str(root / "hybrid")
        args.no_lock = True
    runs = Path(args.runs or ROOT / "runs" / "hybrid-bench")
    out = Path(args.out or ROOT / "eval" / "results" / "hybrid")
    out.parent.mkdir(parents=True, exist_ok=True)
    ranks_dir = out.parent / f"{out.name}_ranks"
    store = out.with_suffix(".json")
    torch.set_num_threads(args.threads)
    command = "python scripts/bench_hybrid.py " + " ".join(sys.argv[1:])
    data = json.loads(store.read_text()) if store.is_file() else {}

    def write(update=None) -> dict:
        nonlocal data

        def apply(cur):
            cur = cur or {"title": "Hybrids: does a fusion beat its best component?", "cells": [], "settings": {}}
            cur = update(cur) if update else cur
            cur["command"], cur["machine"] = command, machine_info()
            return cur

        data = update_json(store, apply)
        data["summary"] = summarise(data, ranks_dir)
        data = update_json(store, lambda cur: {**cur, "summary": data["summary"]})
        atomic_write_text(out.with_suffix(".md"), markdown(data, data["summary"]))
        return data

    for ds in args.datasets:
        st = settings_for(ds, args)
        template = st["template"]
        dataset, split = load_data(ds)
        desc = {"components": [[c.name, c.scorer if c.name != "sasrec" else f"run:{runs}/{ds}/sasrec-s<seed>"]
                               for c in template.components],
                "ltr": ", ".join(f"{k} {getattr(template.ltr, k)}" for k in ("retriever", "top_n", "folds",
                                                                             "text", "max_rounds"))}
        write(lambda cur, ds=ds, desc=desc: {**cur, "settings": {**cur.get("settings", {}), ds: desc}})
        for seed in args.seeds:
            done = {(c["method"]) for c in data.get("cells", []) if c["dataset"] == ds and c["seed"] == seed
                    and (ranks_dir / ds / f"{c['method']}-s{seed}.npy").is_file()}
            todo = [(m, k) for m, k in methods_for(ds, template, args) if m not in done]
            if not todo:
                continue
            with bench_lock(not args.no_lock):
                run_dir = train_sasrec(ds, seed, runs, dataset, split, st["sasrec_epochs"], args.threads)
                cfg, comps = build_components(template, run_dir, seed, dataset, split)
            sas = json.loads((run_dir / "result.json").read_text())
            for method, kind in todo:
                print(f"== {ds} seed {seed} {method}", file=sys.stderr, flush=True)
                with bench_lock(not args.no_lock):
                    res, extra = run_row(method, kind, cfg, comps, dataset, split, seed, args)
                save_ranks(ranks_dir / ds / f"{method}-s{seed}.npy", res.per_user["rank"].to_numpy())
                row = {"dataset": ds, "seed": seed, "method": method, "kind": kind,
                       **{k: res.metrics[k] for k in (*METRICS, "HR@20", "NDCG@20")}, "n_users": len(res.per_user),
                       "candidates_hash": res.candidates_hash, **extra}
                if method == "sasrec":
                    row["sasrec_run"] = {"best_epoch": sas["stages"][0].get("best_epoch"),
                                         "best_valid_NDCG@10": sas.get("best_valid_NDCG@10"),
                                         "seconds": sas.get("seconds"), "threads": sas.get("threads")}
                print(f"   NDCG@10 {row['NDCG@10']:.4f} HR@10 {row['HR@10']:.4f}"
                      + (f" (valid {row['valid_NDCG@10']:.4f})" if row.get("valid_NDCG@10") is not None else "")
                      + f", fit {row['fit_seconds']} s, eval {row['eval_seconds']} s", file=sys.stderr, flush=True)
                write(lambda cur, row=row: {**cur, "cells": [
                    *[c for c in cur.get("cells", []) if (c["dataset"], c["seed"], c["method"])
                      != (row["dataset"], row["seed"], row["method"])], row]})
    data = write()
    for ds, s in data["summary"].items():
        print(f"{ds}: best component {s['best_component']}; goal met by {s['goal_met_by'] or 'none'}", file=sys.stderr)
    print(f"wrote {store} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
