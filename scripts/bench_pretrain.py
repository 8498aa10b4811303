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
Writes eval/results/pretrain.json (every run) and eval/results/pretrain.md (mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import sys
import time
from contextlib import contextmanager
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


@contextmanager
def bench_lock(enabled: bool):
    if not enabled:
        yield
        return
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_unit(dataset, split, ds_name: str, settings: dict, model_name: str, objective: str | None, seed: int,
             run_root: Path) -> dict:
    import shutil

    import torch

    from llmrec.models import build_model
    from llmrec.training import ObjectiveSpec, StageConfig, TrainConfig, train
    from llmrec.training.attributes import AttributeConfig, finetune_attribute
    from llmrec.training.checkpoint import load_model

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
        train(TrainConfig(stages=[stage], model_options=options, test=False, **common), pre_dir, dataset=dataset,
              split=split, progress=False)
        init_from = str(pre_dir)
        out["pretrain_seconds"] = round(time.perf_counter() - t0, 1)
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
        lines += ["", "| encoder | pre-training | " + " | ".join(n for _, n in metrics) + " | Δ NDCG@10 vs none |",
                  "|---|---|" + "---|" * (len(metrics) + 1)]
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
                lines.append(f"| {model} | {pre} | " + " | ".join(cells) + f" | {delta} |")
        maj = [r for r in dr if "gender_majority" in r]
        if maj:
            lines += ["", "Majority-class test accuracy (the floor for the attribute columns): "
                      + ", ".join(f"{t} {statistics.mean(r[f'{t}_majority'] for r in maj):.4f}" for t in ATTRIBUTES)
                      + "; gender AUC floor 0.5."]
        lines += ["", "\"within noise\": |Δ| ≤ the larger standard deviation of the two rows.", ""]
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
