"""The pre-training table: no pre-training vs each objective, followed by the same fine-tuning, over seeds.

    python scripts/bench_pretrain.py --datasets ml-100k --seeds 0            # one seed (tens of minutes)
    python scripts/bench_pretrain.py --datasets ml-100k beauty --seeds 0 1 2 # the committed table (hours)

For each data set, variant and seed (settings: eval/configs/pretrain_<dataset>.yaml):
  1. pre-train the encoder with the variant's objective for `pretrain_epochs` (no early stopping; variant
     `none` skips this and starts from random weights);
  2. fine-tune for next-item recommendation (SASRec: next_item, BERT4Rec: masked_item) with early stopping on
     validation NDCG@10, then test: full ranking, leave-one-out, history masked, ties pessimistic;
  3. ml-100k only: fine-tune the pre-trained encoder + a linear head for each user attribute (gender AUC,
     age-group accuracy, occupation accuracy) on a fixed user split (seed 0, 70/10/20 %).
Objectives that need a bidirectional encoder (masked_item, ptum) pre-train BERT4Rec and are compared with
BERT4Rec without pre-training; the others pre-train SASRec. Each unit holds /tmp/llmrec-bench.lock.
Writes eval/results/pretrain.json (every run), eval/results/pretrain.md (mean ± std over seeds, and a paired
test against no pre-training over the test users: each user's NDCG@10 averaged over the seeds both rows share)
and each unit's per-user test ranks under eval/results/pretrain_ranks/<dataset>/ (uint16, what the paired test
reads). CCL's mask-and-fill generator is conditioned on user attributes: it sees only the attribute-training
users' values, never those of the users the attribute columns are scored on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LOCK = "/tmp/llmrec-bench.lock"

VARIANTS = [  # (name, model, pre-training objective)
    ("none", "sasrec", None),
    ("next_item", "sasrec", "next_item"),
    ("cl4srec", "sasrec", "cl4srec"),
    ("coserec", "sasrec", "coserec"),
    ("duorec", "sasrec", "duorec"),
    ("ccl", "sasrec", "ccl"),
    ("adaptssr", "sasrec", "adaptssr"),
    ("none", "bert4rec", None),
    ("masked_item", "bert4rec", "masked_item"),
    ("ptum", "bert4rec", "ptum"),
]
ATTRIBUTES = ("gender", "age", "occupation")
RANKS = ROOT / "eval" / "results" / "pretrain_ranks"  # main() sets it beside --out: <out>_ranks


def ranks_path(ds: str, model: str, pre: str, seed: int) -> Path:
    return RANKS / ds / f"{model}-{pre}-s{seed}.npy"


def attribute_train_only(dataset, seed: int = 0):
    """The data set with user attributes kept only for the users the attribute heads train on (the fixed
    70/10/20 split of `llmrec.training.attributes`): what a pre-training objective may read (CCL)."""
    from dataclasses import replace

    from llmrec.training.attributes import user_split

    if dataset.users is None:
        return dataset
    keep = user_split(dataset.users.index.to_numpy().astype("int64"), seed)["train"]
    users = dataset.users.copy()
    users.loc[~users.index.isin(keep)] = None
    return replace(dataset, users=users)


def bench_lock(enabled: bool):
    """/tmp/llmrec-bench.lock unless --no-lock: one benchmark on the cores at a time."""
    from llmrec.io import file_lock

    return file_lock(LOCK, enabled)


def run_unit(dataset, split, ds_name: str, settings: dict, model_name: str, objective: str | None, seed: int,
             run_root: Path) -> dict:
    import shutil

    import torch

    from llmrec.models import build_model
    from llmrec.models.checkpoint import load_model
    from llmrec.training import ObjectiveSpec, StageConfig, TrainConfig, train
    from llmrec.training.attributes import AttributeConfig, finetune_attribute

    tag = f"{ds_name}-{model_name}-{objective or 'none'}-s{seed}"
    options = dict(settings["model_options"][model_name])
    common = dict(dataset=ds_name, model=model_name, seed=seed, threads=settings.get("threads", 2))
    out: dict = {"dataset": ds_name, "model": model_name, "pretrain": objective or "none", "seed": seed}
    t0 = time.perf_counter()
    pre_dir = run_root / f"{tag}-pre"
    init_from = None
    if objective is not None:
        shutil.rmtree(pre_dir, ignore_errors=True)
        stage = StageConfig([ObjectiveSpec(objective, options=settings.get("objective_options", {}).get(objective, {}))],
                            epochs=settings["pretrain_epochs"], lr=settings["lr"], early_stop=False,
                            batch_size=settings["batch_size"])
        train(TrainConfig(stages=[stage], model_options=options, test=False, **common), pre_dir,
              dataset=attribute_train_only(dataset), split=split, progress=False)
        init_from = str(pre_dir)
        out["pretrain_seconds"] = round(time.perf_counter() - t0, 1)
        last = (pre_dir / "metrics.jsonl").read_text().splitlines()[-1]
        out["pretrain_last_epoch"] = {k: round(v, 4) for k, v in json.loads(last).items()
                                      if k not in ("stage", "epoch", "train_s")}
    ft_dir = run_root / f"{tag}-ft"
    shutil.rmtree(ft_dir, ignore_errors=True)
    sup = "masked_item" if model_name == "bert4rec" else "next_item"
    ft = settings["finetune"]
    stage = StageConfig([ObjectiveSpec(sup)], epochs=ft["epochs"], lr=ft.get("lr", settings["lr"]),
                        patience=ft["patience"], eval_every=ft.get("eval_every", 1),
                        batch_size=ft.get("batch_size", settings["batch_size"]))
    cfg = TrainConfig(stages=[stage], model_options={} if init_from else options, init_from=init_from, **common)
    t1 = time.perf_counter()
    res = train(cfg, ft_dir, dataset=dataset, split=split, progress=False)
    st = res.stages[0]
    out.update({
        "test_NDCG@10": res.test["NDCG@10"], "test_HR@10": res.test["HR@10"],
        "valid_NDCG@10": res.best_valid_ndcg10, "finetune_best_epoch": st["best_epoch"],
        "finetune_epochs_run": st["epochs_run"], "finetune_seconds": round(time.perf_counter() - t1, 1),
    })
    save_test_ranks(dataset, split, ft_dir, ranks_path(ds_name, model_name, objective or "none", seed), res.test)
    if settings.get("attributes") and dataset.users is not None:
        for task in ATTRIBUTES:
            if init_from:
                encoder, _ = load_model(init_from)
            else:
                torch.manual_seed(seed)
                encoder = build_model(model_name, split.n_items, options)
            encoder.train()
            acfg = AttributeConfig(task=task, seed=seed, threads=settings.get("threads", 2), **settings["attribute"])
            r = finetune_attribute(encoder, dataset, split, acfg, None, progress=False)
            out[f"{task}_{r['metric']}"] = r["test"]
            out[f"{task}_majority"] = r["majority_class_test_accuracy"]
    out["seconds"] = round(time.perf_counter() - t0, 1)
    shutil.rmtree(pre_dir, ignore_errors=True)  # keep disk use small; the table is the artifact
    shutil.rmtree(ft_dir, ignore_errors=True)
    return out


def save_test_ranks(dataset, split, run_dir: Path, path: Path, test: dict) -> None:
    """Each test user's 0-based rank (full ranking) of the fine-tuned model, for the paired tests; checked
    against the metrics train() reported."""
    import numpy as np

    from llmrec.data.candidates import make_candidates
    from llmrec.evaluation import evaluate
    from llmrec.models.checkpoint import load_model
    from llmrec.scorers.id_model import IDModelScorer

    model, _ = load_model(run_dir)
    cands = make_candidates(dataset, split, "full", "test", 0)
    res = evaluate(IDModelScorer(model), dataset, split, cands, ks=(10,), progress=False)
    if abs(res.metrics["NDCG@10"] - test["NDCG@10"]) > 1e-6:
        raise RuntimeError(f"re-evaluation gave NDCG@10 {res.metrics['NDCG@10']}, training reported {test['NDCG@10']}")
    ranks = res.per_user["rank"].to_numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as f:
        np.save(f, np.minimum(ranks, 65535).astype(np.uint16))
    Path(f.name).replace(path)


def paired_vs_none(ds: str, model: str, pre: str, seeds_pre: list[int], seeds_none: list[int]) -> dict | None:
    """Paired test of NDCG@10 over test users: the variant's and no pre-training's per-user NDCG@10, each
    averaged over the seeds both have ranks for."""
    import numpy as np

    from llmrec.evaluation.compare import paired_tests
    from llmrec.evaluation.metrics import per_user_metric

    seeds = [s for s in seeds_pre if s in seeds_none
             and ranks_path(ds, model, pre, s).is_file() and ranks_path(ds, model, "none", s).is_file()]
    if not seeds:
        return None

    def mean_ndcg(p: str) -> np.ndarray:
        return np.mean([per_user_metric(np.load(ranks_path(ds, model, p, s)).astype(np.float64), "NDCG@10")
                        for s in seeds], axis=0)

    return {"seeds": seeds, **paired_tests(mean_ndcg(pre), mean_ndcg("none"))}


METRICS = [("test_NDCG@10", "next-item NDCG@10"), ("test_HR@10", "next-item HR@10"),
           ("gender_AUC", "gender AUC"), ("age_accuracy", "age acc."), ("occupation_accuracy", "occupation acc.")]


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def markdown(rows: list[dict], settings_by_ds: dict) -> str:
    lines = ["# Self-supervised pre-training of ID user models: does it help?", ""]
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        s = settings_by_ds.get(ds, {})
        dr = [r for r in rows if r["dataset"] == ds]
        metrics = [(k, n) for k, n in METRICS if any(k in r for r in dr)]
        seeds = sorted({r["seed"] for r in dr})
        lines += [
            f"## {ds}",
            "",
            f"Pre-training: {s.get('pretrain_epochs')} epochs of the objective; fine-tuning: next-item "
            f"(SASRec next_item, BERT4Rec masked_item), ≤ {s.get('finetune', {}).get('epochs')} epochs, early stopping "
            f"on validation NDCG@10 (patience {s.get('finetune', {}).get('patience')}, validated every "
            f"{s.get('finetune', {}).get('eval_every', 1)} epoch(s)). Test: leave-one-out, full ranking, history "
            f"masked. Seeds {seeds} (mean ± std).",
        ]
        if any("gender_AUC" in r for r in dr):
            lines.append("Attributes (ml-100k u.user): encoder + linear head fine-tuned on a fixed 70/10/20 user "
                         "split (seed 0); gender AUC, age-group (7 MovieLens-1M groups) and occupation (21) accuracy.")
        lines += ["", "| encoder | pre-training | " + " | ".join(n for _, n in metrics)
                  + " | Δ NDCG@10 vs none | paired test vs none (users; Δ [95% CI], p) |",
                  "|---|---|" + "---|" * (len(metrics) + 2)]
        for model in dict.fromkeys(r["model"] for r in dr):
            base = [r["test_NDCG@10"] for r in dr if r["model"] == model and r["pretrain"] == "none"]
            for pre in dict.fromkeys(r["pretrain"] for r in dr if r["model"] == model):
                rs = [r for r in dr if r["model"] == model and r["pretrain"] == pre]
                cells = [_fmt([r[k] for r in rs if k in r]) for k, _ in metrics]
                nd = [r["test_NDCG@10"] for r in rs]
                delta = "–"
                if pre != "none" and base:
                    d = statistics.mean(nd) - statistics.mean(base)
                    spread = max(statistics.stdev(nd) if len(nd) > 1 else 0.0,
                                 statistics.stdev(base) if len(base) > 1 else 0.0)
                    verdict = "helps" if d > spread and d > 0 else ("hurts" if -d > spread and d < 0 else "within noise")
                    if len(nd) < 2 or len(base) < 2:
                        verdict = "one seed: no verdict"
                    delta = f"{d:+.4f} ({100 * d / statistics.mean(base):+.1f}%, {verdict})"
                paired = "–"
                if pre != "none":
                    t = paired_vs_none(ds, model, pre, [r["seed"] for r in rs],
                                       [r["seed"] for r in dr if r["model"] == model and r["pretrain"] == "none"])
                    if t is not None:
                        paired = (f"{t['diff']:+.4f} [{t['diff_ci_low']:+.4f}, {t['diff_ci_high']:+.4f}], "
                                  f"p = {t['p_bootstrap']:.3f} (seeds {t['seeds']})")
                lines.append(f"| {model} | {pre} | " + " | ".join(cells) + f" | {delta} | {paired} |")
        maj = [r for r in dr if "gender_majority" in r]
        if maj:
            lines += ["", "Majority-class test accuracy (the floor for the attribute columns): "
                      + ", ".join(f"{t} {statistics.mean(r[f'{t}_majority'] for r in maj):.4f}" for t in ATTRIBUTES)
                      + "; gender AUC floor 0.5."]
        lines += ["", "\"within noise\": |Δ| ≤ the larger standard deviation of the two rows. Paired test: each "
                  "test user's NDCG@10 averaged over the seeds both rows ran, the mean difference with a 95% "
                  "bootstrap CI over users and the two-sided paired-bootstrap p-value "
                  "(`llmrec.evaluation.compare.paired_tests`).", ""]
        pos = [r for r in dr if "positive_share" in r.get("pretrain_last_epoch", {})]
        if pos:
            lines += ["DuoRec: share of training rows given a supervised same-target positive (last pre-training "
                      "epoch): " + ", ".join(f"seed {r['seed']} {r['pretrain_last_epoch']['positive_share']:.2f}"
                                             for r in pos) + ".", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["ml-100k"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--variants", nargs="*", default=None, help="model/objective pairs, e.g. sasrec/cl4srec")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "pretrain-bench"))
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "pretrain"))
    ap.add_argument("--no-lock", action="store_true")
    ap.add_argument("--settings", help="settings YAML (default eval/configs/pretrain_<dataset>.yaml)")
    args = ap.parse_args()
    import yaml

    from llmrec.io import update_json
    from llmrec.training.loop import load_data

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    global RANKS
    RANKS = out.parent / f"{out.name}_ranks"
    store = out.with_suffix(".json")
    data = json.loads(store.read_text()) if store.is_file() else {"runs": [], "settings": {}}
    for ds_name in args.datasets:
        path = Path(args.settings) if args.settings else ROOT / "eval" / "configs" / f"pretrain_{ds_name}.yaml"
        settings = yaml.safe_load(path.read_text())
        data["settings"][ds_name] = settings
        dataset, split = load_data(ds_name)
        for seed in args.seeds:
            for name, model, objective in VARIANTS:
                if args.variants and f"{model}/{name}" not in args.variants:
                    continue
                key = (ds_name, model, name, seed)
                if any((r["dataset"], r["model"], r["pretrain"], r["seed"]) == key for r in data["runs"]):
                    continue
                print(f"== {ds_name} {model} pretrain={name} seed={seed}", file=sys.stderr, flush=True)
                with bench_lock(not args.no_lock):
                    row = run_unit(dataset, split, ds_name, settings, model, objective, seed, Path(args.runs))
                print(json.dumps(row), file=sys.stderr, flush=True)
                data = update_json(store, lambda cur, row=row, ds=ds_name, st=settings: {
                    "runs": [*(cur or {}).get("runs", []), row],
                    "settings": {**(cur or {}).get("settings", {}), ds: st}})
                out.with_suffix(".md").write_text(markdown(data["runs"], data["settings"]))
    out.with_suffix(".md").write_text(markdown(data["runs"], data["settings"]))
    print(f"wrote {store} and {out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
