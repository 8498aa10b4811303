"""Zero-shot LLM rankers (NIR, listwise, verbalizer, pointwise) on the embedded model, next to random, popularity
and item-kNN on the same candidates; parse quality, tokens and time per user; verbalizer vs generation speed.

Stages (`--stages`, default all; rows of stages not run are kept from the existing JSON):
- nir:      data set nir-ml-100k, protocol `nir` (the 170 published NIR candidate sets, 19 candidates).
            Also the paper's GPT-3.5 outputs re-read with llmrec's parser, next to the authors' Hit@10.
- uf:       nir-ml-100k, `nir-uf:19` (NIR user filtering) over all 943 users; a target missing from a user's
            candidates is a miss. Cheap rankers and baselines rank all 943; the generative ones rank only the
            users whose candidates hold the target and their metrics are rescaled to 943 (exact: every other
            user's rank is infinite whatever the model says). That subset is chosen here, by the harness; the
            rankers never see a target.
- sampled:  ml-100k, `sampled:19` (19 seeded uniform negatives + the target): cheap rankers and baselines on
            all 943 users, generative rankers (and the baselines again) on a seeded sample (`--sample`).
- timing:   no cache; one seeded sample of users of `sampled:19` on ml-100k (20 candidates): per-user time of
            each ranker batched, K=3 bootstrapping vs one pass, and batch-1 latency of verbalizer vs listwise.

Every LLM row uses `hf:smollm2-135m` (fp32, CPU, 1 torch thread, backend batch 16), greedy decoding, the last 8
history titles, one shared response cache (reruns are free; an interrupted run resumes). Wall time per user of a
row answered partly from the cache is scaled to the requests that reached the model; a row answered wholly from
the cache keeps the time measured when it was computed.

Run alone on the machine: `flock /tmp/llmrec-bench.lock .venv/bin/python scripts/bench_rankers.py [--stages nir
timing sampled uf] [--sample 30]` (or `--row-lock` without the outer flock: the lock is then taken per LLM row).
Writes eval/results/llm_rankers.{json,md} after every stage.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llmrec.data import leave_one_out, load_dataset  # noqa: E402
from llmrec.data.candidates import make_candidates  # noqa: E402
from llmrec.evaluation import evaluate  # noqa: E402
from llmrec.evaluation.report import machine_info  # noqa: E402
from llmrec.io import atomic_write_json, atomic_write_text  # noqa: E402
from llmrec.scorers import ScorerContext, build_scorer  # noqa: E402
from llmrec.scorers.llm import LLMScorer  # noqa: E402
from llmrec.types import CandidateSet  # noqa: E402

OUT = ROOT / "eval" / "results" / "llm_rankers"
LOCK = "/tmp/llmrec-bench.lock"
SEED = 0
LLM = "hf:smollm2-135m"
HISTORY = 8
RANKERS = ["verbalizer", "pointwise", "listwise", "nir"]
GENERATIVE = {"listwise", "nir"}
BASELINES = ["random", "pop", "itemknn"]
STAGES = ["nir", "timing", "sampled", "uf"]  # in order of priority


# ---- helpers ------------------------------------------------------------------------------------------------
class Shared:
    """One model in memory for every row: the raw backend (timing) and the cached one (everything else)."""

    def __init__(self) -> None:
        from llmrec.llm import make_backend
        from llmrec.llm.cache import CachedBackend, ResponseCache
        from llmrec.llm.models import cache_dir

        self.raw = make_backend(LLM, batch_size=16, num_threads=1)
        self.cached = CachedBackend(self.raw, ResponseCache(cache_dir() / "llm-responses.sqlite"))


def llm_scorer(ranker: str, backend: Any, titles: str, **opts: Any) -> LLMScorer:
    options = {"history_len": HISTORY, "titles": titles, **opts}
    return LLMScorer(ranker, llm=LLM, options=options, seed=SEED, backend=backend)


def label(ranker: str, opts: dict[str, Any]) -> str:
    extra = ",".join(f"{k}={v}" for k, v in sorted(opts.items()))
    return f"llm:{ranker}" + (f" ({extra})" if extra else "")


ROW_LOCK = False  # --row-lock: take the lock per LLM row (never under an outer `flock` on the same file: deadlock)


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    """With --row-lock, hold the machine's shared benchmark lock for one row, so other benchmarks interleave with
    the rows instead of running beside them."""
    if not ROW_LOCK:
        yield
        return
    with open(LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_row(stage: str, ds: Any, split: Any, cands: CandidateSet, scorer: Any, name: str, users_note: str,
            scale_to: int | None = None) -> dict[str, Any]:
    """Evaluate one scorer on one candidate set; metrics optionally rescaled to `scale_to` users (misses)."""
    scorer.fit(ds, split)
    with bench_lock() if isinstance(scorer, LLMScorer) else contextlib.nullcontext():  # baselines take ms
        res = evaluate(scorer, ds, split, cands, progress=sys.stderr.isatty())
    m = dict(res.metrics)
    n = len(cands.users)
    if scale_to:
        m = {k: (v * n / scale_to if k.startswith(("HR@", "NDCG@")) or k == "MRR" else v) for k, v in m.items()}
    row: dict[str, Any] = {
        "stage": stage, "dataset": ds.name, "protocol": cands.protocol, "scorer": name, "users": users_note,
        "n_ranked": n, "n_users": scale_to or n,
        "HR@10": round(m["HR@10"], 4), "NDCG@10": round(m["NDCG@10"], 4), "MRR": round(m["MRR"], 4),
        "candidates_hash": res.candidates_hash,
    }
    if stage == "timing":
        row["timing"] = users_note  # labelled before the row is first written
    rep = res.scorer_report
    if "ranker" in rep:
        calls, req = rep.get("llm_calls", 0), rep["requests"]
        row.update(
            parse_rate=rep["parse_rate"], invalid_item_rate=rep["invalid_item_rate"],
            prompt_tok_per_user=rep["prompt_tokens_per_user"],
            completion_tok_per_user=rep["completion_tokens_per_user"],
            requests=req, llm_calls=calls, cache_hits=rep["cache_hits"], wall_s=rep["wall_s"],
            s_per_user=(round(rep["wall_s"] * req / (calls * rep["users"]), 3) if calls else None),
        )
    print(json.dumps({k: row[k] for k in row if k not in ("candidates_hash",)}), flush=True)
    DONE.append(row)
    write(DONE, {})  # after every row: an interrupted run keeps what it finished
    return row


DONE: list[dict[str, Any]] = []  # rows this process finished, in order


def seeded_sample(cands: CandidateSet, n: int) -> CandidateSet:
    """The same users `llmrec evaluate --max-users n --seed 0` picks."""
    if n <= 0 or n >= len(cands.users):
        return cands
    rng = np.random.default_rng(SEED)
    return cands.subset(np.sort(rng.choice(len(cands.users), n, replace=False)))


def target_in(cands: CandidateSet) -> np.ndarray:
    return (cands.items == cands.targets[:, None]).any(axis=1)


class FixedScores:
    """Scores computed beforehand, looked up by (user, candidate) — for the published GPT-3.5 outputs."""

    name = "fixed"

    def __init__(self, table: dict[tuple[int, int], float]) -> None:
        self.table = table

    def fit(self, ds: Any, split: Any) -> None:
        pass

    def score(self, batch: Any) -> torch.Tensor:
        c = batch.candidates.numpy()
        u = batch.users.numpy()
        return torch.tensor([[self.table.get((int(uu), int(i)), -1e9) for i in row] for uu, row in zip(u, c)])


def published_gpt35(ds: Any, split: Any, cands: CandidateSet) -> list[dict[str, Any]]:
    """The paper's GPT-3.5 step-3 answers re-read with llmrec's parser (named first, the rest seeded)."""
    from llmrec.data import nir
    from llmrec.data.datasets import DATASETS, locate
    from llmrec.parsing import TitleMatcher, parse_ranking
    from llmrec.rankers.base import positional_scores, user_rng

    folder, _ = locate(DATASETS.get("nir-ml-100k"), None)
    answers = {int(r["PID"]): r["Predictions"] for r in json.loads((folder / nir.RESULTS_FILE).read_text())}
    table: dict[tuple[int, int], float] = {}
    parsed_n = invalid = named = 0
    for u, items in zip(cands.users, cands.items):
        titles = ds.items.titles(items)
        p = parse_ranking(answers[int(ds.user_index[u - 1])], TitleMatcher(titles), "numbered_pairs")
        parsed_n += p.parsed
        invalid += p.invalid
        named += p.entries
        s = positional_scores(p.order, len(titles), user_rng(SEED, int(u)).permutation(len(titles)))
        table.update({(int(u), int(i)): float(v) for i, v in zip(items, s)})
    row = run_row("nir", ds, split, cands, FixedScores(table), "gpt-3.5 (published answers, llmrec parser)", "170")
    row.update(parse_rate=round(parsed_n / len(cands.users), 4), invalid_item_rate=round(invalid / named, 4))
    DONE.remove(row)
    paper = {"stage": "nir", "dataset": ds.name, "protocol": "nir", "scorer": "gpt-3.5 (paper: authors' Hit@10)",
             "users": "170", "n_ranked": 170, "n_users": 170, "HR@10": cands.meta.get("gpt35_hit_at_10"),
             "NDCG@10": None, "MRR": None}
    DONE.extend([paper, row])
    write(DONE, {})
    return [paper, row]


# ---- stages -------------------------------------------------------------------------------------------------
def stage_nir(sh: Shared) -> list[dict[str, Any]]:
    ds = load_dataset("nir-ml-100k")
    split = leave_one_out(ds)
    cands = make_candidates(ds, split, "nir", "test", SEED)
    rows = published_gpt35(ds, split, cands)
    for b in BASELINES:
        rows.append(run_row("nir", ds, split, cands, build_scorer(b, ScorerContext(seed=SEED)), b, "170"))
    for r in RANKERS:
        rows.append(run_row("nir", ds, split, cands, llm_scorer(r, sh.cached, "raw"), label(r, {}), "170"))
    for r in ("verbalizer", "pointwise"):
        rows.append(run_row("nir", ds, split, cands, llm_scorer(r, sh.cached, "raw", bootstrap=3),
                            label(r, {"bootstrap": 3}), "170"))
    return rows


def stage_uf(sh: Shared) -> list[dict[str, Any]]:
    ds = load_dataset("nir-ml-100k")
    split = leave_one_out(ds)
    cands = make_candidates(ds, split, "nir-uf:19", "test", SEED)
    hit = target_in(cands)
    sub = cands.subset(np.nonzero(hit)[0])
    n_all, n_hit = len(cands.users), int(hit.sum())
    rows = []
    for b in BASELINES:
        rows.append(run_row("uf", ds, split, cands, build_scorer(b, ScorerContext(seed=SEED)), b, "all"))
    for r in RANKERS:
        if r in GENERATIVE:
            rows.append(run_row("uf", ds, split, sub, llm_scorer(r, sh.cached, "raw"), label(r, {}),
                                f"{n_hit} with target, /{n_all}", scale_to=n_all))
        else:
            rows.append(run_row("uf", ds, split, cands, llm_scorer(r, sh.cached, "raw"), label(r, {}), "all"))
    return rows


def stage_sampled(sh: Shared, sample: int,
                  rank_all: tuple[str, ...] = ("verbalizer", "pointwise")) -> list[dict[str, Any]]:
    ds = load_dataset("ml-100k")
    split = leave_one_out(ds)
    cands = make_candidates(ds, split, "sampled:19", "test", SEED)
    small = seeded_sample(cands, sample)
    rows = []
    for b in BASELINES:
        scorer = build_scorer(b, ScorerContext(seed=SEED))
        rows.append(run_row("sampled", ds, split, cands, scorer, b, "all"))
        rows.append(run_row("sampled", ds, split, small, scorer, b, f"sample {sample}"))
    for r in RANKERS:
        if r not in GENERATIVE and r in rank_all:
            rows.append(run_row("sampled", ds, split, cands, llm_scorer(r, sh.cached, "natural"), label(r, {}), "all"))
            rows.append(run_row("sampled", ds, split, small, llm_scorer(r, sh.cached, "natural"), label(r, {}),
                                f"sample {sample}"))
        else:
            rows.append(run_row("sampled", ds, split, small, llm_scorer(r, sh.cached, "natural"), label(r, {}),
                                f"sample {sample}"))
    return rows


def stage_timing(sh: Shared, n: int, n_latency: int) -> list[dict[str, Any]]:
    """Uncached per-user time on the same users and the same 20 candidates."""
    ds = load_dataset("ml-100k")
    split = leave_one_out(ds)
    cands = seeded_sample(make_candidates(ds, split, "sampled:19", "test", SEED), n)
    lat = cands.subset(np.arange(n_latency))
    rows = []

    def timed(r: str, cs: CandidateSet, what: str, **opts: Any) -> dict[str, Any]:
        sc = llm_scorer(r, sh.raw, "natural", **opts)
        row = run_row("timing", ds, split, cs, sc, label(r, {k: v for k, v in opts.items() if k != "batch_users"}),
                      what)
        row["timing"] = what
        return row

    for r, opts in (("verbalizer", {}), ("verbalizer", {"bootstrap": 3}), ("pointwise", {}),
                    ("pointwise", {"bootstrap": 3}), ("listwise", {})):
        rows.append(timed(r, cands, f"batched ({n} users per call)", batch_users=n, **opts))
    for r in ("verbalizer", "listwise"):
        rows.append(timed(r, lat, "batch of 1 (latency)", batch_users=1))
    return rows


# ---- tables -------------------------------------------------------------------------------------------------
def fmt(v: Any, nd: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [
        "# Zero-shot LLM rankers",
        "",
        f"Reproduce: `{res['command']}` (stages took "
        + ", ".join(f"{k} {v} min" for k, v in res.get("stage_minutes", {}).items())
        + "; nir, uf and sampled ran in parallel worker processes, timing alone; reruns hit the response cache).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores (shared with other jobs), torch {m['torch']}, {m['date']}. "
        f"Model: `{LLM}` (SmolLM2-135M-Instruct, fp32, 1 torch thread, greedy). Every ranker sees the last "
        f"{HISTORY} history titles; bootstrap K=1 unless the row says otherwise; seed {SEED}.",
        "",
    ]
    heads = {
        "nir": "## ML-100K, the 170 published NIR candidate sets (`--dataset nir-ml-100k --protocol nir`)",
        "uf": "## ML-100K, NIR user filtering for all 943 users (`--dataset nir-ml-100k --protocol nir-uf:19`)",
        "sampled": "## ML-100K, 19 uniform negatives + the target (`--dataset ml-100k --protocol sampled:19`)",
    }
    cols = ["scorer", "users", "HR@10", "NDCG@10", "MRR", "parse rate", "invalid items", "prompt tok/user",
            "compl. tok/user", "s/user"]
    for stage, head in heads.items():
        rows = [r for r in res["rows"] if r["stage"] == stage]
        if not rows:
            continue
        out += [head, "", "| " + " | ".join(cols) + " |", "|---|---|" + "---:|" * (len(cols) - 2)]
        for r in rows:
            out.append("| " + " | ".join([
                r["scorer"], str(r["users"]), fmt(r["HR@10"]), fmt(r["NDCG@10"]), fmt(r["MRR"]),
                fmt(r.get("parse_rate"), 3), fmt(r.get("invalid_item_rate"), 3),
                fmt(r.get("prompt_tok_per_user"), 1), fmt(r.get("completion_tok_per_user"), 1),
                fmt(r.get("s_per_user"), 2),
            ]) + " |")
        out.append("")
    t = [r for r in res["rows"] if r["stage"] == "timing"]
    if t:
        out += ["## Speed (no cache; ml-100k `sampled:19`, 20 candidates, the same seeded users for every row)", "",
                "| ranker | how | users | s/user | prompt tok/user | compl. tok/user |", "|---|---|---:|---:|---:|---:|"]
        for r in t:
            out.append(f"| {r['scorer']} | {r['timing']} | {r['n_ranked']} | {fmt(r.get('s_per_user'), 3)} | "
                       f"{fmt(r.get('prompt_tok_per_user'), 1)} | {fmt(r.get('completion_tok_per_user'), 1)} |")
        out.append("")
        for line in res.get("speed", []):
            out.append(f"- {line}")
        out.append("")
    out += ["## Notes", "", *[f"- {n}" for n in res["notes"]], ""]
    return "\n".join(out)


def speed_lines(rows: list[dict[str, Any]]) -> list[str]:
    t = {(r["scorer"], r["timing"].split(" (")[0]): r.get("s_per_user") for r in rows if r["stage"] == "timing"}

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> str:
        return f"{t[a] / t[b]:.1f}x" if t.get(a) and t.get(b) else "n/a"

    return [
        "verbalizer vs listwise generation on the same users and candidates: "
        f"{ratio(('llm:listwise', 'batched'), ('llm:verbalizer', 'batched'))} faster batched, "
        f"{ratio(('llm:listwise', 'batch of 1'), ('llm:verbalizer', 'batch of 1'))} faster at batch 1.",
        "K=3 bootstrapping vs one pass: verbalizer "
        f"{ratio(('llm:verbalizer (bootstrap=3)', 'batched'), ('llm:verbalizer', 'batched'))} (each order is a new "
        "prompt; the hf backend recomputes the shared history prefix), pointwise "
        f"{ratio(('llm:pointwise (bootstrap=3)', 'batched'), ('llm:pointwise', 'batched'))} (the prefix is the "
        "history alone and the candidates are continuations, so every order is the same computation, done once).",
    ]


NOTES = [
    "Metrics: leave-one-out by time, test phase; HR@10, NDCG@10, MRR with pessimistic ties; a target missing from "
    "a user's candidates is a miss (rank infinite).",
    "`nir`: the NIR authors' 170 candidate sets (users whose user-filtering candidates hold the target) and their "
    "prompt inputs exactly (titles as in the paper's file, last 8 watched titles); a random top 10 of 19 hits "
    "10/19 = 0.526, so NDCG@10 and MRR say more than HR@10. The paper's GPT-3.5 Hit@10 0.6706 counts a hit when "
    "the target's title appears anywhere in the answer; llmrec's parser reads the ranked candidates (the right "
    "side of each `watched - candidate` pair, a left side only when it is exactly a candidate) and takes the "
    "first 10, which is stricter.",
    "`nir-uf:19`: generative rankers (listwise, nir) ranked only the users whose user-filtering candidates hold "
    "the target, because ranking all 943 with generation is too slow on this 2-core CPU; their HR@10, NDCG@10 "
    "and MRR are the sums over those users divided by 943, which is exact: for every other user the target is "
    "not a candidate, so the rank is infinite whatever the model says. The harness chose the subset from the "
    "candidate file; no ranker saw a target. (The candidate sets are the published ones, in vote order rather than "
    "the paper's prompt order, so the prompts differ from the `nir` rows'.)",
    "`sampled:19`: generative rankers ranked a seeded sample of users (the `--max-users N --seed 0` sample); "
    "the baselines and cheap rankers are shown on the same sample as well as on all 943 users.",
    "parse rate: generated answers from which at least one candidate was read; invalid items: answer entries "
    "naming no candidate (titles outside the set, the user's own history, chatter). Verbalizer and pointwise read "
    "log-probabilities, so nothing can fail to parse. Candidates a model never names follow the named ones in a "
    "seeded random order.",
    "Tokens count every request as sent and answered (cached ones included: they describe the method). "
    "s/user is wall time of the ranker calls per user with 1 torch thread on a 2-core machine: orientation, not a "
    "benchmark. A full run computes the quality rows in three worker processes at once and the speed table "
    "alone; the committed 2026-11-27 rows were computed while other benchmarks shared the 2 cores (load average "
    "4-8), so their s/user is inflated (about 3x for verbalizer against the 1.32 s/user measured alone earlier); "
    "the speed table's ratios compare rankers run back to back on the same users under the same load. A row "
    "answered wholly from the response cache (pointwise with bootstrap 3: the same requests as bootstrap 1) "
    "shows no time.",
]


PARALLEL = [["nir"], ["uf"], ["sampled"]]  # worker processes of a full run; then timing, alone


def run_all(args: argparse.Namespace) -> int:
    """A full run: the quality stages in parallel worker processes (one model each, 1 thread each: the 2 cores
    are busy and this run holds the benchmark lock), then the timing stage alone."""
    import subprocess

    base = [sys.executable, str(Path(__file__).resolve()), "--sample", str(args.sample)]
    procs = [subprocess.Popen(base + ["--stages", *stages]) for stages in PARALLEL]
    codes = [p.wait() for p in procs]
    rc = subprocess.call(base + ["--stages", "timing", "--timing-users", str(args.timing_users),
                                 "--latency-users", str(args.latency_users)])
    return max(codes + [rc])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stages", nargs="+", default=None, choices=STAGES,
                    help="stages to run in this process (default: all, nir/uf/sampled in parallel workers)")
    ap.add_argument("--sample", type=int, default=30, help="users for generative rankers on sampled:19")
    ap.add_argument("--rank-all", default="verbalizer,pointwise",
                    help="sampled: log-probability rankers that also rank all 943 users (the rest: the sample)")
    ap.add_argument("--timing-users", type=int, default=16)
    ap.add_argument("--latency-users", type=int, default=4)
    ap.add_argument("--row-lock", action="store_true", help=f"take {LOCK} per LLM row (not under flock)")
    args = ap.parse_args()
    global ROW_LOCK
    ROW_LOCK = args.row_lock
    if args.stages is None:
        return run_all(args)

    sh = Shared()
    t0 = time.perf_counter()
    minutes: dict[str, float] = {}
    for stage in args.stages:
        t = time.perf_counter()
        if stage == "nir":
            stage_nir(sh)
        elif stage == "uf":
            stage_uf(sh)
        elif stage == "sampled":
            stage_sampled(sh, args.sample, tuple(x for x in args.rank_all.split(",") if x))
        else:
            stage_timing(sh, args.timing_users, args.latency_users)
        minutes[stage] = round((time.perf_counter() - t) / 60, 1)
        write(DONE, minutes)
    print(f"wrote {OUT}.json/.md ({(time.perf_counter() - t0) / 60:.1f} min)")
    return 0


def write(new_rows: list[dict[str, Any]], minutes: dict[str, float]) -> None:
    """Merge this process's stages into the results on disk (other workers may write theirs meanwhile)."""
    path = OUT.with_suffix(".json")
    with open("/tmp/llmrec-bench-rankers-results.lock", "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        old = json.loads(path.read_text()) if path.exists() else {"rows": []}
        _write(old, new_rows, minutes)
        fcntl.flock(lk, fcntl.LOCK_UN)


def _write(old: dict[str, Any], new_rows: list[dict[str, Any]], minutes: dict[str, float]) -> None:
    path = OUT.with_suffix(".json")
    # keep the longest time a stage took: a rerun answered from the cache is not the cost of computing it
    minutes = {**old.get("stage_minutes", {}),
               **{k: max(v, old.get("stage_minutes", {}).get(k, 0.0)) for k, v in minutes.items()}}
    # a row answered wholly from the cache keeps the time measured when it was computed
    key = lambda r: (r["stage"], r["dataset"], r["protocol"], r["scorer"], str(r["users"]))  # noqa: E731
    before = {key(r): r for r in old["rows"]}
    for r in new_rows:
        prev = before.get(key(r))
        if r.get("s_per_user") is None and prev is not None and prev.get("s_per_user") is not None:
            r["s_per_user"] = prev["s_per_user"]
    done = {r["stage"] for r in new_rows}
    rows = [r for r in old["rows"] if r["stage"] not in done] + new_rows
    rows.sort(key=lambda r: STAGES.index(r["stage"]))
    res = {
        "title": "Zero-shot LLM rankers on ML-100K",
        "command": "flock /tmp/llmrec-bench.lock .venv/bin/python scripts/bench_rankers.py",
        "machine": {**machine_info()},
        "llm": LLM,
        "history_len": HISTORY,
        "seed": SEED,
        "stage_minutes": minutes,
        "compute_minutes": round(sum(minutes.values()), 1),
        "rows": rows,
        "speed": speed_lines(rows),
        "notes": NOTES,
    }
    atomic_write_json(path, res)
    atomic_write_text(OUT.with_suffix(".md"), markdown(res))


if __name__ == "__main__":
    raise SystemExit(main())
