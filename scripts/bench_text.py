"""Benchmark of the text encoders (issue 6): ranking quality, cold start, cross-domain transfer, throughput.

Writes eval/results/text_encoders.json and eval/results/text_encoders.md; each section can be rerun alone and
replaces only its own part of the JSON. Every number names its data set, split, candidates, metric and seed.

  flock /tmp/llmrec-bench.lock .venv/bin/python scripts/bench_text.py                  # every section
  flock /tmp/llmrec-bench.lock .venv/bin/python scripts/bench_text.py --sections main --sasrec runs/sasrec-ml-100k

Sections
  main        ml-100k, `full` and `sampled:100`, via the `llmrec evaluate` command: popularity, item-kNN, frozen
              MiniLM (zero-shot), MiniLM + the shipped LoRA adapter, the trained text user encoder (@seq) on
              both, and SASRec when a run folder is given (--sasrec).
  coldstart   10% of ml-100k's items (seed 0) never appear in training (llmrec.data.coldstart); users whose test
              item is cold are evaluated. The LoRA adapter here is tuned on the cold-start split's training part.
  transfer    ml-100k split by release year into two item-disjoint folders in the generic format, built in the
              llmrec cache at run time (never committed): source = films from 1994 on, target = films up to 1993.
              An adapter tuned on the source is evaluated zero-shot on the target, against frozen MiniLM and an
              adapter tuned on the target itself.
  throughput  item texts/s through llmrec (`TextEncoder.encode_catalog`, cache off) vs raw
              sentence-transformers `encode` on the same texts; LoRA training steps/s per objective.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llmrec.io import atomic_write_text, cache_dir, update_json  # noqa: E402

RESULTS = ROOT / "eval" / "results" / "text_encoders.json"
ADAPTER = "adapters/ml-100k-minilm-lora"
DATA_DIR: str | None = None  # --data-dir (None: the usual data roots)
SEED = 0
METRICS = ("HR@10", "NDCG@10", "MRR")
LLMREC = [sys.executable, "-m", "llmrec"]


def log(msg: str) -> None:
    print(f"[bench_text {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def llmrec_evaluate(dataset: str, scorer: str, protocol: str) -> dict[str, Any]:
    """One `llmrec evaluate ... --json` run; returns its JSON plus the command."""
    cmd = ["evaluate", "--dataset", dataset, "--scorer", scorer, "--protocol", protocol, "--seed", str(SEED), "--json"]
    if DATA_DIR:
        cmd += ["--data-dir", DATA_DIR]
    t0 = time.perf_counter()
    out = subprocess.run(LLMREC + cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"llmrec {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    res = json.loads(out.stdout)
    res["command"] = "llmrec " + " ".join(cmd)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    return res


def row(res: dict[str, Any], **extra: Any) -> dict[str, Any]:
    keep = {k: res[k] for k in ("scorer", "dataset", "protocol", "phase", "seed", "n_candidates", "n_users",
                                "candidates_hash", "split_hash") if k in res}
    keep.update({k: round(float(res[k]), 4) for k in METRICS})
    rep = res.get("scorer_report") or {}
    if "user_encoder_train" in rep:
        keep["user_encoder_train_s"] = rep["user_encoder_train"]["seconds"]
    keep.update(extra)
    return keep


# ---- select: which tuning settings to ship, by validation NDCG@10 (full) ---------------------------------------
def section_select(args: argparse.Namespace) -> dict[str, Any]:
    from llmrec.encoders.lora import read_manifest

    rows = []
    for folder in args.candidates:
        m = read_manifest(folder) or {}
        cfg = m.get("config", {})
        valid = m.get("metrics", {}).get("valid", {})
        rows.append({"candidate": Path(folder).name, "objectives": cfg.get("objectives"), "epochs": cfg.get("epochs"),
                     "history_grad": cfg.get("history_grad", False), "negatives": cfg.get("negatives", "batch"),
                     "train_seconds": m.get("training", {}).get("seconds"),
                     **{f"valid {p} {k}": v.get(k) for p, v in valid.get("tuned", {}).items() for k in ("HR@10", "NDCG@10")},
                     "adapter_sha256": m.get("files", {}).get("adapter_model.safetensors")})
    if not rows:
        raise SystemExit("--sections select needs --candidates ADAPTER_DIR ...")
    base = read_manifest(args.candidates[0])["metrics"]["valid"]["base"]
    best = max(rows, key=lambda r: (r.get("valid full NDCG@10") or 0, r.get("valid sampled:100 NDCG@10") or 0))
    return {"criterion": "validation NDCG@10, full ranking (ties: sampled:100); the test set is not looked at",
            "dataset": "ml-100k", "frozen_minilm_valid": base, "candidates": rows, "chosen": best["candidate"]}


# ---- main ---------------------------------------------------------------------------------------------------
def section_main(args: argparse.Namespace) -> dict[str, Any]:
    scorers = ["pop", "itemknn", "text:minilm", f"text:minilm+{ADAPTER}", "text:minilm@seq",
               f"text:minilm+{ADAPTER}@seq"]
    sasrec_note = "not included: no SASRec run folder was given (--sasrec)"
    if args.sasrec and (Path(args.sasrec) / "model.json").is_file():
        scorers.append(f"run:{args.sasrec}")
        sasrec_note = f"`run:{args.sasrec}` (eval/configs/sasrec_ml-100k.yaml, seed 0), evaluated here"
    elif args.sasrec:
        sasrec_note = f"run folder {args.sasrec} absent at bench time"
    rows = []
    for protocol in ("full", "sampled:100"):
        for s in scorers:
            log(f"main: {s} {protocol}")
            res = llmrec_evaluate("ml-100k", s, protocol)
            rows.append(row(res, command=res["command"]))
    if not any(r["scorer"].startswith("run:") for r in rows):
        rows += sasrec_from_results()
        if any(r["scorer"].startswith("SASRec") for r in rows):
            sasrec_note += "; SASRec rows copied from eval/results/sasrec.json (same split, same seed-0 candidates)"
    return {"dataset": "ml-100k", "split": "leave-one-out by time (test = last item, valid = second to last)",
            "phase": "test", "seed": SEED, "adapter": ADAPTER, "rows": rows, "sasrec": sasrec_note}


def sasrec_from_results() -> list[dict[str, Any]]:
    """SASRec's ml-100k test numbers from the ID-model benchmark's committed results, when present."""
    path = ROOT / "eval" / "results" / "sasrec.json"
    if not path.is_file():
        return []
    runs = [r for r in json.loads(path.read_text()).get("runs", []) if r.get("dataset") == "ml-100k" and r.get("seed") == SEED]
    out = []
    for r in runs[:1]:
        for protocol, key in (("full", "test_full"), ("sampled:100", "test_sampled100")):
            m = r.get(key) or {}
            out.append({"scorer": "SASRec (eval/results/sasrec.json)", "dataset": "ml-100k", "protocol": protocol,
                        "n_users": 943, **{k: m.get(k, float("nan")) for k in METRICS}})
    return out


# ---- adapters tuned inside the benchmark (kept in the cache, never committed) ---------------------------------
def tuned_adapter(dataset: Any, split: Any, name: str, tune: list[str]) -> tuple[Path, dict[str, Any]]:
    """An adapter tuned like the shipped one (`--tune KEY=VALUE` overrides), cached by split and settings."""
    import hashlib

    from llmrec.config import load_config, to_dict
    from llmrec.encoders.lora import LoraTuneConfig, read_manifest, tune_encoder

    cfg = load_config(LoraTuneConfig, None, tune, base={"seed": SEED})
    tag = hashlib.sha256(json.dumps(to_dict(cfg), sort_keys=True).encode()).hexdigest()[:8]
    out = cache_dir() / "bench-text" / "adapters" / f"{name}-{split.hash}-{tag}"
    if (out / "manifest.json").is_file() and not (out / "checkpoint.pt").is_file():
        log(f"reusing adapter {out}")
        return out, read_manifest(out) or {}
    log(f"tuning adapter {out}")
    manifest = tune_encoder(dataset, split, cfg, out, name=name)
    return out, manifest


def adapter_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    t = manifest.get("training", {})
    return {"dataset": manifest.get("dataset", {}).get("name"), "split_hash": manifest.get("dataset", {}).get("split_hash"),
            "objective": manifest.get("objective"), "epochs": t.get("epochs"), "steps": t.get("steps"),
            "train_seconds": t.get("seconds"), "valid": manifest.get("metrics", {}).get("valid"),
            "config": manifest.get("config")}


# ---- cold start ---------------------------------------------------------------------------------------------
def section_coldstart(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from llmrec.data import load_dataset
    from llmrec.data.coldstart import cold_start_split
    from llmrec.evaluation import evaluate
    from llmrec.scorers import ScorerContext, build_scorer
    from llmrec.types import ScoreBatch

    cs = cold_start_split(load_dataset("ml-100k", DATA_DIR), frac=args.cold_frac, seed=SEED)
    if len(cs.users) == 0:
        raise SystemExit(f"no user's test item is among the {len(cs.cold_items)} cold items; raise --cold-frac")
    adapter, manifest = tuned_adapter(cs.dataset, cs.split, "ml-100k-coldstart", args.tune)
    scorers = ["pop", "itemknn", "text:minilm", f"text:minilm+{adapter}", "text:minilm@seq",
               f"text:minilm+{adapter}@seq"]
    cold = torch.from_numpy(cs.cold_items)
    rows = []
    for s in scorers:
        log(f"coldstart: {s}")
        scorer = build_scorer(s, ScorerContext(seed=SEED))
        scorer.fit(cs.dataset, cs.split)
        h = torch.from_numpy(cs.split.history(cs.users, "test"))
        with torch.inference_mode():
            full = scorer.score(ScoreBatch(torch.from_numpy(cs.users), h, None))  # (U, N+1)
        warm = torch.ones(full.shape[1], dtype=torch.bool)
        warm[0] = False
        warm[cold] = False
        cold_stats = {"cold_item_score_max": round(float(full[:, cold].max()), 4),
                      "cold_item_score_distinct": int(torch.unique(full[:, cold]).numel()),
                      "warm_item_score_mean": round(float(full[:, warm].mean()), 4),
                      "cold_item_score_mean": round(float(full[:, cold].mean()), 4)}
        name = s.replace(str(adapter), "<cold-start adapter>")
        for protocol in ("full", "sampled:100"):
            res = evaluate(scorer, cs.dataset, cs.split, cs.candidates(protocol, SEED), ks=(10,), progress=False)
            rows.append({"scorer": name, "users": "cold test targets", "protocol": res.protocol,
                         "n_users": len(res.per_user), "n_candidates": res.n_candidates,
                         **{k: round(res.metrics[k], 4) for k in METRICS}, **cold_stats})
        res = evaluate(scorer, cs.dataset, cs.split, cs.candidates("full", SEED, cold=False), ks=(10,), progress=False)
        rows.append({"scorer": name, "users": "warm test targets", "protocol": res.protocol,
                     "n_users": len(res.per_user), "n_candidates": res.n_candidates,
                     **{k: round(res.metrics[k], 4) for k in METRICS}})
    return {"dataset": "ml-100k", "cold_frac": args.cold_frac, "cold_seed": SEED, "cold_items": int(len(cs.cold_items)),
            "cold_users": int(len(cs.users)), "warm_users": int(len(cs.warm_users)),
            "removed_interactions": cs.dataset.meta["removed_interactions"], "split_hash": cs.split.hash,
            "split": "interactions with cold items removed except users' last ones; then leave-one-out by time",
            "adapter": adapter_summary(manifest), "rows": rows}


# ---- cross-domain transfer ----------------------------------------------------------------------------------
def write_year_folders() -> tuple[Path, Path]:
    """ml-100k split by release year into item-disjoint generic folders (interactions.csv + items.csv)."""
    import pandas as pd

    from llmrec.data import load_dataset

    ds = load_dataset("ml-100k", DATA_DIR)
    root = cache_dir() / "bench-text" / "ml-100k-by-year"
    frame = ds.items.frame
    year = pd.to_numeric(frame["year"], errors="coerce")
    old = (year <= 1993).to_numpy()
    inter = ds.interactions
    out = []
    for name, keep_items in (("ml-100k-1994-1998", ~old), ("ml-100k-1922-1993", old)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        items = np.nonzero(keep_items)[0] + 1
        sub = inter[np.isin(inter["item"].to_numpy(), items)]
        atomic_write_text(folder / "interactions.csv", pd.DataFrame({
            "user_id": ds.user_index[sub["user"].to_numpy() - 1].astype(str),
            "item_id": ds.item_index[sub["item"].to_numpy() - 1].astype(str),
            "timestamp": sub["timestamp"].to_numpy(), "rating": sub["rating"].to_numpy(),
        }).to_csv(index=False))
        atomic_write_text(folder / "items.csv", pd.DataFrame({
            "item_id": ds.item_index[items - 1].astype(str), "title": frame.loc[items, "title"].to_numpy(),
            "genres": frame.loc[items, "genres"].to_numpy(), "year": frame.loc[items, "year"].to_numpy(),
        }).to_csv(index=False))
        out.append(folder)
    return out[0], out[1]


def section_transfer(args: argparse.Namespace) -> dict[str, Any]:
    from llmrec.data import leave_one_out, load_dataset

    source, target = write_year_folders()
    info = {}
    adapters = {}
    for role, folder in (("source", source), ("target", target)):
        ds = load_dataset(folder)
        sp = leave_one_out(ds)
        info[role] = {"folder": folder.name, "users": ds.n_users, "items": ds.n_items,
                      "interactions": ds.n_interactions, "split_hash": sp.hash}
        adapters[role] = tuned_adapter(ds, sp, folder.name, args.tune)
    rows = []
    scorers = [("pop", "pop"), ("itemknn", "itemknn"), ("frozen MiniLM (zero-shot)", "text:minilm"),
               ("MiniLM + adapter tuned on source (zero-shot transfer)", f"text:minilm+{adapters['source'][0]}"),
               ("MiniLM + adapter tuned on target (in-domain reference)", f"text:minilm+{adapters['target'][0]}")]
    for protocol in ("full", "sampled:100"):
        for label, s in scorers:
            log(f"transfer: {label} {protocol}")
            res = llmrec_evaluate(str(target), s, protocol)
            rows.append(row(res, method=label, command=res["command"].replace(str(cache_dir()), "$LLMREC_CACHE")))
    return {"source": info["source"], "target": info["target"],
            "how": "ml-100k items split by release year (source: 1994-1998, target: 1922-1993; no shared items); "
                   "built at run time under $LLMREC_CACHE/bench-text/ml-100k-by-year in the generic folder format",
            "adapters": {k: adapter_summary(v[1]) for k, v in adapters.items()}, "rows": rows}


# ---- throughput ---------------------------------------------------------------------------------------------
def section_throughput(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from sentence_transformers import SentenceTransformer

    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.item_text import item_sentences
    from llmrec.encoders import contrastive
    from llmrec.encoders.lora import LoraTuneConfig, attach_lora, lora_parameters
    from llmrec.encoders.text_encoder import TextEncoder, resolve_model

    ds = load_dataset("ml-100k", DATA_DIR)
    texts = item_sentences(ds.items)
    enc = TextEncoder.load("minilm")
    raw = SentenceTransformer(resolve_model("minilm"), device="cpu")
    raw.max_seq_length = enc.max_length
    out: dict[str, Any] = {"texts": len(texts), "batch_size": enc.batch_size, "threads": torch.get_num_threads()}
    enc.encode_catalog(ds.items, cache=False)  # warm-up both
    raw.encode(texts[:256], batch_size=128)
    t_llm, t_raw = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        t0 = time.perf_counter()
        a = enc.encode_catalog(ds.items, cache=False)
        t_llm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = raw.encode(texts, batch_size=128, convert_to_tensor=True, normalize_embeddings=True)
        t_raw.append(time.perf_counter() - t0)
    assert torch.allclose(a[1:], b, atol=1e-5)
    m_llm, m_raw = statistics.median(t_llm), statistics.median(t_raw)
    out["encode"] = {"llmrec_texts_per_s": round(len(texts) / m_llm, 1), "raw_st_texts_per_s": round(len(texts) / m_raw, 1),
                     "llmrec_overhead_pct": round(100 * (m_llm / m_raw - 1), 1), "repeats": args.repeats,
                     "llmrec_seconds": [round(x, 3) for x in t_llm], "raw_seconds": [round(x, 3) for x in t_raw],
                     "same_embeddings": True}
    t0 = time.perf_counter()
    enc.encode_catalog(ds.items, cache=True)
    t0 = time.perf_counter()
    enc.encode_catalog(ds.items, cache=True)
    out["encode"]["cached_texts_per_s"] = round(len(texts) / (time.perf_counter() - t0), 1)

    split = leave_one_out(ds)
    steps = {}
    for label, kw in (("next_item", {}), ("next_item (history_grad)", {"history_grad": True}),
                      ("cooc", {"objectives": ["cooc"]}), ("dp", {"objectives": ["dp"]})):
        cfg = LoraTuneConfig(**kw)
        e = TextEncoder.load("minilm", max_length=cfg.max_length)
        attach_lora(e, cfg)
        params = list(lora_parameters(e).values())
        opt = torch.optim.AdamW(params, lr=cfg.lr)
        stream = contrastive.build_objectives(e, ds, split, cfg)[0]
        n = 4 if kw.get("history_grad") else args.steps
        batches = stream.epoch_batches(np.random.default_rng(0), n + 1)
        e.st.train()
        t_refresh = None
        if label == "next_item":
            t0 = time.perf_counter()
            stream.memory = stream.table.embed_all()
            t_refresh = time.perf_counter() - t0
        stream.before_step(1)  # no refresh at step 1
        times = []
        for i, b in enumerate(batches):
            t0 = time.perf_counter()
            loss = stream.loss(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:  # the first step warms up
                times.append(time.perf_counter() - t0)
        per = statistics.median(times)
        entry = {"batch_size": cfg.batch_size, "step_s": round(per, 3), "steps_per_s": round(1 / per, 2),
                 "examples_per_s": round(cfg.batch_size / per, 1), "steps_timed": len(times)}
        if t_refresh is not None:
            amort = per + t_refresh / cfg.refresh_every
            entry.update({"memory_refresh_s": round(t_refresh, 2), "refresh_every": cfg.refresh_every,
                          "steps_per_s_with_refresh": round(1 / amort, 2)})
        steps[label] = entry
        log(f"throughput: {label} {entry}")
    out["lora_training"] = {"model": "minilm", "lora": "r=8 on query,value (73,728 parameters)", "steps": steps}
    return out


# ---- report -------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    import torch

    return {"date": time.strftime("%Y-%m-%d %H:%M"), "python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def to_markdown(res: dict[str, Any]) -> str:
    L = ["# Text encoders and text-based (ID-free) recommendation", "",
         "Produced by `scripts/bench_text.py` (see its docstring for how to rerun). Leave-one-out by time, test "
         "phase, seed 0, ties broken pessimistically; `full` ranks every item with the user's history masked, "
         "`sampled:100` ranks the target among 100 seeded uniform negatives (the same saved file for every method). "
         "Metrics: HR@10, NDCG@10, MRR.", ""]
    if "select" in res:
        c = res["select"]
        fb = c["frozen_minilm_valid"]
        L += ["## Choosing the shipped adapter's settings (validation only)", "",
              f"Criterion: {c['criterion']}. Frozen MiniLM on validation: full NDCG@10 {fb['full']['NDCG@10']}, "
              f"sampled:100 NDCG@10 {fb['sampled:100']['NDCG@10']}. Chosen: `{c['chosen']}`.", "",
              "| candidate | objectives | epochs | history_grad | negatives | train s | valid full NDCG@10 | "
              "valid sampled:100 NDCG@10 |", "|---|---|---|---|---|---|---|---|"]
        L += [f"| {r['candidate']} | {'+'.join(r['objectives'] or [])} | {r['epochs']} | {r['history_grad']} | "
              f"{r['negatives']} | {r['train_seconds']} | {r.get('valid full NDCG@10')} | "
              f"{r.get('valid sampled:100 NDCG@10')} |" for r in c["candidates"]]
        L += [""]
    if "main" in res:
        m = res["main"]
        L += ["## ml-100k", "", f"Adapter `{m['adapter']}`; SASRec: {m['sasrec']}. Numbers from `llmrec evaluate` "
              f"(commands in the JSON).", "",
              "| scorer | protocol | HR@10 | NDCG@10 | MRR | users |", "|---|---|---|---|---|---|"]
        L += [f"| `{r['scorer']}` | {r['protocol']} | {fmt(r['HR@10'])} | {fmt(r['NDCG@10'])} | "
              f"{fmt(r.get('MRR', ''))} | {r['n_users']} |" for r in m["rows"]]
        L += [""]
    if "coldstart" in res:
        c = res["coldstart"]
        a = c["adapter"]
        L += ["## Cold start (ml-100k)", "",
              f"{c['cold_items']} items ({c['cold_frac']:.0%}, seed {c['cold_seed']}) never appear in training "
              f"({c['removed_interactions']} interactions removed); {c['cold_users']} users whose test item is cold "
              f"are evaluated (warm-target users for comparison). Split hash `{c['split_hash']}`. The LoRA adapter was "
              f"tuned on this split's training part ({a['epochs']} epochs, {a['steps']} steps). `cold max score` is "
              f"the highest score any cold item gets from the scorer.", "",
              "| scorer | users | protocol | HR@10 | NDCG@10 | MRR | users | cold max score | distinct cold scores |",
              "|---|---|---|---|---|---|---|---|---|"]
        L += [f"| `{r['scorer']}` | {r['users']} | {r['protocol']} | {fmt(r['HR@10'])} | {fmt(r['NDCG@10'])} | "
              f"{fmt(r['MRR'])} | {r['n_users']} | {r.get('cold_item_score_max', '')} | "
              f"{r.get('cold_item_score_distinct', '')} |" for r in c["rows"]]
        L += [""]
    if "transfer" in res:
        t = res["transfer"]
        L += ["## Cross-domain transfer", "", t["how"] + ".",
              f"Source `{t['source']['folder']}`: {t['source']['users']} users, {t['source']['items']} items, "
              f"{t['source']['interactions']} interactions. Target `{t['target']['folder']}`: {t['target']['users']} "
              f"users, {t['target']['items']} items, {t['target']['interactions']} interactions (split hash "
              f"`{t['target']['split_hash']}`). Evaluated on the target's test items.", "",
              "| method | protocol | HR@10 | NDCG@10 | MRR | users |", "|---|---|---|---|---|---|"]
        L += [f"| {r['method']} | {r['protocol']} | {fmt(r['HR@10'])} | {fmt(r['NDCG@10'])} | {fmt(r['MRR'])} | "
              f"{r['n_users']} |" for r in t["rows"]]
        L += [""]
    if "throughput" in res:
        p = res["throughput"]
        e = p["encode"]
        L += ["## Throughput", "",
              f"{p['texts']} ml-100k item sentences, batch {p['batch_size']}, {p['threads']} threads, median of "
              f"{e['repeats']} interleaved runs: llmrec {e['llmrec_texts_per_s']} texts/s, raw sentence-transformers "
              f"{e['raw_st_texts_per_s']} texts/s (llmrec overhead {e['llmrec_overhead_pct']}%; identical "
              f"embeddings); from the embedding cache {e['cached_texts_per_s']} texts/s.", "",
              "| LoRA objective | batch | s/step | steps/s | examples/s |", "|---|---|---|---|---|"]
        for k, v in p["lora_training"]["steps"].items():
            extra = (f" ({v['steps_per_s_with_refresh']} with the memory refresh of {v['memory_refresh_s']} s every "
                     f"{v['refresh_every']} steps)") if "memory_refresh_s" in v else ""
            L += [f"| {k} | {v['batch_size']} | {v['step_s']} | {v['steps_per_s']}{extra} | {v['examples_per_s']} |"]
        L += [""]
    L += ["## Machines", ""]
    L += [f"- {k}: " + ", ".join(f"{a}={b}" for a, b in v.items()) for k, v in res.get("machine", {}).items()]
    return "\n".join(L) + "\n"


def main() -> int:
    global ADAPTER, DATA_DIR, RESULTS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="main,coldstart,transfer,throughput")
    ap.add_argument("--adapter", default=ADAPTER, help="the shipped adapter folder for the main table")
    ap.add_argument("--data-dir", default=None, help="data root holding ml-100k (a smoke test uses tests/fixtures)")
    ap.add_argument("--results", default=str(RESULTS), help="JSON to write (the Markdown goes beside it)")
    ap.add_argument("--sasrec", default=None, help="a SASRec run folder for `run:` in the main table")
    ap.add_argument("--tune", action="append", default=[], metavar="KEY=VALUE",
                    help="LoraTuneConfig override for the adapters tuned inside the benchmark (match the shipped "
                    "adapter's settings, e.g. --tune epochs=1 --tune objectives=[next_item,cooc])")
    ap.add_argument("--candidates", nargs="*", default=[], help="select: adapter folders tuned with other settings")
    ap.add_argument("--cold-frac", type=float, default=0.1, help="coldstart: fraction of items held out")
    ap.add_argument("--repeats", type=int, default=5, help="throughput: interleaved encode runs")
    ap.add_argument("--steps", type=int, default=10, help="throughput: timed LoRA steps per objective")
    args = ap.parse_args()
    ADAPTER, DATA_DIR, RESULTS = args.adapter, args.data_dir, Path(args.results)
    fns = {"select": section_select, "main": section_main, "coldstart": section_coldstart, "transfer": section_transfer,
           "throughput": section_throughput}
    for name in [s.strip() for s in args.sections.split(",") if s.strip()]:
        t0 = time.perf_counter()
        section = {**fns[name](args), "bench_seconds": round(time.perf_counter() - t0, 1)}
        # merged into what is on disk now: another bench_text process may have written its sections meanwhile
        res = update_json(RESULTS, lambda cur, name=name, section=section: {
            **(cur or {}), name: section, "machine": {**(cur or {}).get("machine", {}), name: machine()}})
        atomic_write_text(RESULTS.with_suffix(".md"), to_markdown(res))
        log(f"{name} done in {section['bench_seconds']} s; wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
