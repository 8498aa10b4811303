"""RecBole's SASRec on exactly our leave-one-out data: wall time to the best validation NDCG@10 and test NDCG@10.

    python scripts/bench_recbole.py --datasets ml-100k beauty [--epochs 60] [--patience 10]

RecBole lives in its own venv (it pins old numpy / pandas / setuptools):
    python3 -m venv .venv-recbole && .venv-recbole/bin/pip install torch==2.13.0
    .venv-recbole/bin/pip install recbole "setuptools<70" "numpy<2" "pandas<2.2" "scipy<1.14"
This script runs in the main venv: it loads each data set with llmrec, writes RecBole atomic files whose
timestamps are each interaction's position in our chronological order (so RecBole's `LS` leave-one-out split and
ours are the same — checked by comparing the users' last items), then runs itself inside .venv-recbole as the
worker. Same hyper-parameters as our SASRec (eval/configs/sasrec_<dataset>.yaml): full-softmax CE, hidden 64,
inner 256, 2 layers, heads, dropout, lr 1e-3, batch 256, max length 50, full ranking with the history masked.
RecBole trains on every prefix of every sequence (one sample per target). Results: eval/results/recbole_sasrec.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECBOLE_PY = ROOT / ".venv-recbole" / "bin" / "python"


def write_atomic(dataset_name: str, folder: Path, data_dir: str | None) -> dict:
    """<folder>/<name>/<name>.inter from our canonical order; returns what the worker needs to check the split."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset(dataset_name, data_dir)
    split = leave_one_out(ds)
    name = Path(dataset_name).name.replace("-", "_")
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    users = np.repeat(np.arange(split.n_users + 1), split.lengths)
    order = np.arange(len(split.items))  # global position: increasing within each user
    with open(out / f"{name}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for u, i, t in zip(users, split.items, order):
            f.write(f"{u}\t{i}\t{t}\n")
    eval_users = split.eval_users("test")
    return {
        "name": name,
        "n_items": int(split.n_items),
        "n_users": int(split.n_users),
        "test_targets": {str(int(u)): int(t) for u, t in zip(eval_users, split.targets(eval_users, "test"))},
        "split_hash": split.hash,
    }


def run_worker(spec: dict) -> dict:
    """Inside .venv-recbole: train RecBole's SASRec, recording the time of every validation."""
    import torch

    torch.set_num_threads(spec["threads"])
    _load = torch.load
    torch.load = lambda *a, **k: _load(*a, **{**k, "weights_only": False})  # RecBole saves whole configs
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    hp = spec["hp"]
    cfg = {
        "data_path": spec["data_path"], "checkpoint_dir": spec["checkpoint_dir"],
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": hp["max_len"], "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "train_neg_sample_args": None, "loss_type": "CE",
        "hidden_size": hp["hidden"], "inner_size": hp["hidden"] * hp["ffn_mult"], "n_layers": hp["n_layers"],
        "n_heads": hp["n_heads"], "hidden_dropout_prob": hp["dropout"], "attn_dropout_prob": hp["dropout"],
        "hidden_act": "gelu", "initializer_range": 0.02,
        "learning_rate": hp["lr"], "train_batch_size": hp["batch_size"],
        "eval_batch_size": 512 * (spec["n_items"] + 1), "epochs": spec["epochs"], "stopping_step": spec["patience"],
        "eval_step": 1, "seed": spec["seed"], "reproducibility": True, "use_gpu": False, "device": "cpu",
        "show_progress": False, "state": "WARNING", "worker": 0, "weight_decay": 0.0,
    }
    config = Config(model="SASRec", dataset=spec["name"], config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    # the same split as ours: RecBole's test target of each user equals our test target
    uid = dataset.field2id_token["user_id"]
    iid = dataset.field2id_token["item_id"]
    inter = test_data.dataset.inter_feat
    mismatch = sum(
        spec["test_targets"].get(str(uid[int(u)])) != int(iid[int(i)])
        for u, i in zip(inter["user_id"].tolist(), inter["item_id"].tolist())
    )
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    train_times: list[float] = []
    orig = trainer._train_epoch

    def timed(*a, **k):
        t = time.perf_counter()
        r = orig(*a, **k)
        train_times.append(time.perf_counter() - t)
        return r

    trainer._train_epoch = timed
    log: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()
    trainer.fit(train_data, valid_data, saved=True, show_progress=False,
                callback_fn=lambda epoch, score: log.append((epoch, float(score), time.perf_counter() - t0)))
    total = time.perf_counter() - t0
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    best = max(log, key=lambda x: x[1])
    import resource

    return {
        "library": "recbole", "dataset": spec["dataset"], "seed": spec["seed"],
        "best_valid_NDCG@10": best[1], "best_epoch": best[0] + 1, "seconds_to_best": round(best[2], 1),
        "epochs_run": len(log), "seconds_total": round(total, 1),
        "epoch_train_seconds": round(sum(train_times) / max(1, len(train_times)), 2),
        "train_samples_per_epoch": len(train_data.dataset),
        "samples_per_second": round(len(train_data.dataset) / (sum(train_times) / max(1, len(train_times))), 1),
        "test": {"HR@10": float(test["hit@10"]), "NDCG@10": float(test["ndcg@10"])},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "split_test_target_mismatches": int(mismatch), "n_test_users": len(inter),
        "valid_curve": [(e + 1, round(s, 5), round(t, 1)) for e, s, t in log],
        "recbole_version": __import__("recbole").__version__, "torch": torch.__version__,
    }


def load_hp(dataset: str) -> dict:
    import yaml

    cfg = yaml.safe_load((ROOT / "eval" / "configs" / f"sasrec_{dataset}.yaml").read_text())
    st = cfg["stages"][0]
    mo = {"max_len": 50, "hidden": 64, "n_layers": 2, "n_heads": 1, "ffn_mult": 4, "dropout": 0.5,
          **cfg.get("model_options", {})}
    return {**mo, "lr": st.get("lr", 1e-3), "batch_size": st.get("batch_size", 256)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["ml-100k"])
    ap.add_argument("--epochs", type=int, default=60, help="epoch cap (RecBole epochs: every prefix once)")
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--hp-from", default=None, help="take hyper-parameters from this data set's config")
    ap.add_argument("--out", default=str(ROOT / "eval" / "results" / "recbole_sasrec.json"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(Path(args.worker).read_text())
        print(json.dumps(run_worker(spec)))
        return 0
    if not RECBOLE_PY.is_file():
        print(f"RecBole venv missing: {RECBOLE_PY} (see this script's docstring)", file=sys.stderr)
        return 1
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for name in args.datasets:
        with tempfile.TemporaryDirectory(prefix="recbole-") as tmp:
            info = write_atomic(name, Path(tmp) / "data", args.data_dir)
            spec = {**info, "dataset": name, "data_path": str(Path(tmp) / "data"),
                    "checkpoint_dir": str(Path(tmp) / "saved"), "hp": load_hp(args.hp_from or name), "epochs": args.epochs,
                    "patience": args.patience, "seed": args.seed, "threads": args.threads}
            spec_path = Path(tmp) / "spec.json"
            spec_path.write_text(json.dumps(spec))
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            print(f"== RecBole SASRec on {name} (cap {args.epochs} epochs, patience {args.patience})", file=sys.stderr)
            proc = subprocess.run([str(RECBOLE_PY), __file__, "--worker", str(spec_path)], capture_output=True,
                                  text=True, env=env)
            if proc.returncode != 0:
                print(proc.stderr[-4000:], file=sys.stderr)
                return 1
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["hp"] = spec["hp"]
            res["load_average_after"] = round(os.getloadavg()[0], 2)
            res["protocol"] = "leave-one-out (our split), full ranking over all items, history masked"
            results[name] = res
            print(json.dumps({k: v for k, v in res.items() if k != "valid_curve"}, indent=1), file=sys.stderr)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
