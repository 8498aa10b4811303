"""Zero-shot LLM rankers (NIR, listwise, verbalizer, pointwise) on the embedded model, next to random, popularity
and item-kNN on the same candidates; parse quality, tokens and time per user; verbalizer vs generation speed.

Every row names its rule (the `rule` column): how candidates a generative model never named were scored —
`bottom` (tied below every named one; llmrec's default, strict), `fill` (a seeded random order after the named
ones: a free ~10/19 HR@10 for a model that names nothing) — or `named anywhere` (the NIR paper's hit rule: the
target's title occurs anywhere in the answer; HR only), or `n/a` (the scorer scores every candidate).

Stages (`--stages`, default all; rows of stages not run are kept from the existing JSON):
- nir:      data set nir-ml-100k, protocol `nir` (the 170 published NIR candidate sets, 19 candidates).
            Also the paper's GPT-3.5 outputs re-read with llmrec's parser, next to the authors' Hit@10. The
            generative rankers and the GPT-3.5 answers appear under `bottom` and `fill` (the same answers: the
            `fill` rows come from the response cache), and GPT-3.5 and `llm:nir` under `named anywhere` too.
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
Writes eval/results/llm_rankers.{json,md} after every stage (`--out STEM` elsewhere).
Smoke run (a few seconds of model time): `scripts/bench_rankers.py --stages nir --max-users 3 --out
/tmp/llm_rankers --response-cache /tmp/llm-responses.sqlite` (a sample of the 170 users; `--max-users` needs
`--out`, so a smoke run never overwrites the committed tables).
"""

from __future__ import annotations

import argparse
import contextlib
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
from llmrec.io import (  # noqa: E402
    atomic_write_json,
    atomic_write_text,
    file_lock,  # noqa: E402
)
from llmrec.parsing import named_anywhere  # noqa: E402
from llmrec.rankers.nir import step3_answers  # noqa: E402
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
ONLY_RANKERS: set[str] = set()  # --rankers: a subset of RANKERS (empty = all)
RULES = ("bottom", "fill")  # nir stage: generative rows under both rules for never-named candidates
ANYWHERE = "named anywhere"  # the NIR paper's hit rule (HR only)
MAX_USERS = 0  # --max-users: a seeded sample of the nir stage's 170 users (a smoke run); 0 = all
RESPONSE_CACHE: Path | None = None  # --response-cache (default: <llmrec cache>/llm-responses.sqlite)


# ---- helpers ------------------------------------------------------------------------------------------------
class Shared:
    """One model in memory for every row: the raw backend (timing) and the cached one (everything else)."""

    def __init__(self) -> None:
        from llmrec.io import cache_dir
        from llmrec.llm import make_backend
        from llmrec.llm.cache import CachedBackend, ResponseCache

        self.raw = make_backend(LLM, batch_size=16, num_threads=1)
        self.cached = CachedBackend(self.raw, ResponseCache(RESPONSE_CACHE or cache_dir() / "llm-responses.sqlite"))


def llm_scorer(ranker: str, backend: Any, titles: str, **opts: Any) -> LLMScorer:
    options = {"history_len": HISTORY, "titles": titles, **opts}
    return LLMScorer(ranker, llm=LLM, options=options, seed=SEED, backend=backend)


def label(ranker: str, opts: dict[str, Any]) -> str:
    extra = ",".join(f"{k}={v}" for k, v in sorted(opts.items()))
    return f"llm:{ranker}" + (f" ({extra})" if extra else "")


class Step3Recorder:
    """Passes an `llm:nir` scorer through `evaluate` and keeps each user's step-3 answer (the given candidate
    order's), for the paper's named-anywhere rule."""

    def __init__(self, inner: LLMScorer) -> None:
        self.inner, self.name, self.batch_size = inner, inner.name, inner.batch_size
        self.answers: dict[int, str] = {}

    def fit(self, ds: Any, split: Any) -> None:
        self.inner.fit(ds, split)

    def score(self, batch: Any) -> torch.Tensor:
        s = self.inner.score(batch)
        for u, r in zip(batch.users.tolist(), self.inner.last_results):
            self.answers[int(u)] = step3_answers(r)[0]
        return s

    def report(self) -> dict[str, Any]:
        return self.inner.report()


def named_anywhere_row(stage: str, ds: Any, cands: CandidateSet, answers: dict[int, str], titles: list[str],
                       name: str, users_note: str) -> dict[str, Any]:
    """HR@10 under the NIR paper's rule: the target's title, as the prompt showed it (`titles`), occurs anywhere
    in the user's answer; a target that is not one of the user's candidates is a miss. No rank: NDCG/MRR –."""
    hits = [bool(t in items) and named_anywhere(answers.get(int(u), ""), titles[int(t)])
            for u, t, items in zip(cands.users, cands.targets, cands.items)]
    row: dict[str, Any] = {
        "stage": stage, "dataset": ds.name, "protocol": cands.protocol, "scorer": name, "users": users_note,
        "n_ranked": len(hits), "n_users": len(hits), "rule": ANYWHERE,
        "HR@10": round(float(np.mean(hits)), 4) if hits else None, "NDCG@10": None, "MRR": None,
        "candidates_hash": cands.hash,
    }
    print(json.dumps({k: row[k] for k in row if k != "candidates_hash"}), flush=True)
    DONE.append(row)
    write(DONE, {})
    return row


ROW_LOCK = False  # --row-lock: take the lock per LLM row (never under an outer `flock` on the same file: deadlock)


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    """With --row-lock, hold the machine's shared benchmark lock for one row, so other benchmarks interleave with
    the rows instead of running beside them."""
    if not ROW_LOCK:
        yield
        return
    with file_lock(LOCK):
        yield


def run_row(stage: str, ds: Any, split: Any, cands: CandidateSet, scorer: Any, name: str, users_note: str,
            scale_to: int | None = None, rule: str | None = None) -> dict[str, Any]:
    """Evaluate one scorer on one candidate set; metrics optionally rescaled to `scale_to` users (misses).
    `rule`: the never-named rule when the scorer's report does not say it (fixed scores)."""
    scorer.fit(ds, split)
    is_llm = isinstance(getattr(scorer, "inner", scorer), LLMScorer)
    with bench_lock() if is_llm else contextlib.nullcontext():  # baselines take ms
        res = evaluate(scorer, ds, split, cands, progress=sys.stderr.isatty())
    m = dict(res.metrics)
    n = len(cands.users)
    if scale_to:
        m = {k: (v * n / scale_to if k.startswith(("HR@", "NDCG@")) or k == "MRR" else v) for k, v in m.items()}
    row: dict[str, Any] = {
        "stage": stage, "dataset": ds.name, "protocol": cands.protocol, "scorer": name, "users": users_note,
        "n_ranked": n, "n_users": scale_to or n, "rule": rule or res.scorer_report.get("unnamed_rule", "n/a"),
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
            unnamed_share=rep.get("unnamed_share"),
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


def published_gpt35(ds: Any, split: Any, cands: CandidateSet, users_note: str) -> list[dict[str, Any]]:
    """The paper's GPT-3.5 step-3 answers: the authors' Hit@10, the answers re-read with llmrec's parser (the
    user's history titles known to it) under each rule for never-named candidates, and the paper's
    named-anywhere rule recomputed (`llmrec.parsing.named_anywhere`)."""
    from llmrec.data import nir
    from llmrec.data.datasets import DATASETS, locate
    from llmrec.parsing import TitleMatcher, parse_ranking
    from llmrec.rankers.base import positional_scores, user_rng

    folder, _ = locate(DATASETS.get("nir-ml-100k"), None)
    answers = {int(r["PID"]): r["Predictions"] for r in json.loads((folder / nir.RESULTS_FILE).read_text())}
    by_user = {int(u): answers[int(ds.user_index[u - 1])] for u in cands.users}
    histories = split.history_lists(cands.users, "test")
    tables: dict[str, dict[tuple[int, int], float]] = {rule: {} for rule in RULES}
    parsed_n = invalid = named = unnamed = n_cands = 0
    for u, items, hist in zip(cands.users, cands.items, histories):
        titles = ds.items.titles(items)
        matcher = TitleMatcher(titles, history=ds.items.titles(hist))
        p = parse_ranking(by_user[int(u)], matcher, "numbered_pairs")
        parsed_n += p.parsed
        invalid += p.invalid
        named += p.entries
        unnamed += len(titles) - len(set(p.order))
        n_cands += len(titles)
        for rule in RULES:
            rest = user_rng(SEED, int(u)).permutation(len(titles)) if rule == "fill" else None
            scores = positional_scores(p.order, len(titles), rest)
            tables[rule].update({(int(u), int(i)): float(v) for i, v in zip(items, scores)})
    rows = []
    if not MAX_USERS:  # the authors' number is over all 170
        rows.append({"stage": "nir", "dataset": ds.name, "protocol": "nir",
                     "scorer": "gpt-3.5 (paper: authors' Hit@10)", "users": "170", "n_ranked": 170, "n_users": 170,
                     "rule": ANYWHERE, "HR@10": cands.meta.get("gpt35_hit_at_10"), "NDCG@10": None, "MRR": None})
        DONE.append(rows[-1])
    for rule in RULES:
        name = "gpt-3.5 (published answers, llmrec parser)" + ("" if rule == "bottom" else f" (unnamed={rule})")
        row = run_row("nir", ds, split, cands, FixedScores(tables[rule]), name, users_note, rule=rule)
        row.update(parse_rate=round(parsed_n / len(cands.users), 4),
                   invalid_item_rate=round(invalid / named, 4) if named else None,
                   unnamed_share=round(unnamed / n_cands, 4) if n_cands else None)
        rows.append(row)
    raw_titles = ["", *(ds.items.title(i) for i in range(1, ds.n_items + 1))]  # as in the paper's prompts
    rows.append(named_anywhere_row("nir", ds, cands, by_user, raw_titles, "gpt-3.5 (published answers, named "
                                   "anywhere, llmrec)", users_note))
    write(DONE, {})
    return rows


# ---- stages -------------------------------------------------------------------------------------------------
def stage_nir(sh: Shared) -> list[dict[str, Any]]:
    ds = load_dataset("nir-ml-100k")
    split = leave_one_out(ds)
    cands = make_candidates(ds, split, "nir", "test", SEED)
    note = "170"
    if MAX_USERS:
        cands, note = seeded_sample(cands, MAX_USERS), f"sample {MAX_USERS} of 170"
    rows = published_gpt35(ds, split, cands, note)
    for b in BASELINES:
        rows.append(run_row("nir", ds, split, cands, build_scorer(b, ScorerContext(seed=SEED)), b, note))
    for r in RANKERS:
        if ONLY_RANKERS and r not in ONLY_RANKERS:
            continue
        if r not in GENERATIVE:
            rows.append(run_row("nir", ds, split, cands, llm_scorer(r, sh.cached, "raw"), label(r, {}), note))
            continue
        for rule in RULES:  # the same prompts under both rules: the second is answered by the response cache
            opts = {} if rule == "bottom" else {"unnamed": rule}
            sc = Step3Recorder(llm_scorer(r, sh.cached, "raw", unnamed=rule)) if r == "nir" else \
                llm_scorer(r, sh.cached, "raw", unnamed=rule)
            rows.append(run_row("nir", ds, split, cands, sc, label(r, opts), note))
            if r == "nir" and rule == "bottom":
                rows.append(named_anywhere_row("nir", ds, cands, sc.answers, sc.inner.titles,
                                               label(r, {}) + " (named anywhere)", note))
    for r in ("verbalizer", "pointwise"):
        if ONLY_RANKERS and r not in ONLY_RANKERS:
            continue
        rows.append(run_row("nir", ds, split, cands, llm_scorer(r, sh.cached, "raw", bootstrap=3),
                            label(r, {"bootstrap": 3}), note))
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
        if ONLY_RANKERS and r not in ONLY_RANKERS:
            continue
        if r not in GENERATIVE and r in rank_all:
            rows.append(run_row("sampled", ds, split, cands, llm_scorer(r, sh.cached, "natural"), label(r, {}), "all"))
            rows.append(run_row("sampled", ds, split, small, llm_scorer(r, sh.cached, "natural"), label(r, {}),
                                f"sample {sample}"))
        elif r not in GENERATIVE:
            rows.append(run_row("sampled", ds, split, small, llm_scorer(r, sh.cached, "natural"), label(r, {}),
                                f"sample {sample}"))
        else:  # the same answers under both rules (the second from the response cache)
            for rule in RULES:
                opts = {} if rule == "bottom" else {"unnamed": rule}
                rows.append(run_row("sampled", ds, split, small, llm_scorer(r, sh.cached, "natural", unnamed=rule),
                                    label(r, opts), f"sample {sample}"))
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
    cols = ["scorer", "rule", "users", "HR@10", "NDCG@10", "MRR", "parse rate", "invalid items", "never named",
            "prompt tok/user", "compl. tok/user", "s/user"]
    for stage, head in heads.items():
        rows = [r for r in res["rows"] if r["stage"] == stage]
        if not rows:
            continue
        out += [head, "", RULE_LINE, "", "| " + " | ".join(cols) + " |", "|---|---|---|" + "---:|" * (len(cols) - 3)]
        for r in rows:
            out.append("| " + " | ".join([
                r["scorer"], r["rule"], str(r["users"]), fmt(r["HR@10"]), fmt(r["NDCG@10"]), fmt(r["MRR"]),
                fmt(r.get("parse_rate"), 3), fmt(r.get("invalid_item_rate"), 3), fmt(r.get("unnamed_share"), 3),
                fmt(r.get("prompt_tok_per_user"), 1), fmt(r.get("completion_tok_per_user"), 1),
                fmt(r.get("s_per_user"), 2),
            ]) + " |")
        out.append("")
    t = [r for r in res["rows"] if r["stage"] == "timing"]
    if t:
        out += ["## Speed (no cache; ml-100k `sampled:19`, 20 candidates, the same seeded users for every row)", "",
                RULE_LINE, "",
                "| ranker | rule | how | users | s/user | prompt tok/user | compl. tok/user |",
                "|---|---|---|---:|---:|---:|---:|"]
        for r in t:
            out.append(f"| {r['scorer']} | {r['rule']} | {r['timing']} | {r['n_ranked']} | "
                       f"{fmt(r.get('s_per_user'), 3)} | {fmt(r.get('prompt_tok_per_user'), 1)} | "
                       f"{fmt(r.get('completion_tok_per_user'), 1)} |")
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


RULE_LINE = ("rule: how candidates a generative model never named were scored — `bottom` tied below every named one "
             "(strict: a never-named target ranks last), `fill` a seeded random order after the named ones; "
             "`named anywhere` the NIR paper's hit rule (the target's title anywhere in the answer, HR only); "
             "`n/a` the scorer scores every candidate. never named: share of candidates named in no answer.")


def legacy_rule(row: dict[str, Any]) -> str:
    """The rule of a row written before rows named it: generative rows then always used the seeded fill."""
    name = row["scorer"]
    if name.startswith("gpt-3.5 (paper"):
        return ANYWHERE
    if name.startswith(("llm:listwise", "llm:nir", "gpt-3.5 (published answers")):
        return "fill"
    return "n/a"


NOTES = [
    "Metrics: leave-one-out by time, test phase; HR@10, NDCG@10, MRR with pessimistic ties; a target missing from "
    "a user's candidates is a miss (rank infinite).",
    "`nir`: the NIR authors' 170 candidate sets (users whose user-filtering candidates hold the target) and their "
    "prompt inputs exactly (titles as in the paper's file, last 8 watched titles); a random top 10 of 19 hits "
    "10/19 = 0.526, so NDCG@10 and MRR say more than HR@10. The paper's GPT-3.5 Hit@10 0.6706 counts a hit when "
    "the target's title appears anywhere in the answer; llmrec's parser reads the ranked candidates (the right "
    "side of each `watched - candidate` pair, a left side only when it is exactly a candidate) and takes the "
    "first 10, which is stricter. Its `named anywhere` rows apply the paper's rule (llmrec.parsing.named_anywhere: "
    "the target's title as shown in the prompt occurs anywhere in the step-3 answer, either side of a pair).",
    "`nir-uf:19`: generative rankers (listwise, nir) ranked only the users whose user-filtering candidates hold "
    "the target, because ranking all 943 with generation is too slow on this 2-core CPU; their HR@10, NDCG@10 "
    "and MRR are the sums over those users divided by 943, which is exact: for every other user the target is "
    "not a candidate, so the rank is infinite whatever the model says. The harness chose the subset from the "
    "candidate file; no ranker saw a target. (The candidate sets are the published ones, in vote order rather than "
    "the paper's prompt order, so the prompts differ from the `nir` rows'.)",
    "`sampled:19`: generative rankers ranked a seeded sample of users (the `--max-users N --seed 0` sample); "
    "the baselines and cheap rankers are shown on the same sample as well as on all 943 users.",
    "parse rate: generated answers from which at least one candidate was read; invalid items: answer entries "
    "naming no candidate (titles outside the set, the user's own history echoed, chatter). Verbalizer and "
    "pointwise read log-probabilities, so nothing can fail to parse. Candidates a generative model never names: "
    "see the rule column; `bottom` is llmrec's default since issue 11, rows computed before it used `fill`.",
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

    base = [sys.executable, str(Path(__file__).resolve()), "--sample", str(args.sample), "--out", str(OUT),
            "--max-users", str(args.max_users)]
    if args.response_cache:
        base += ["--response-cache", args.response_cache]
    procs = [subprocess.Popen(base + ["--stages", *stages]) for stages in PARALLEL]
    codes = [p.wait() for p in procs]
    rc = subprocess.call(base + ["--stages", "timing", "--timing-users", str(args.timing_users),
                                 "--latency-users", str(args.latency_users)])
    return max(codes + [rc])


def main() -> int:
    global ROW_LOCK, OUT, MAX_USERS, RESPONSE_CACHE, ONLY_RANKERS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stages", nargs="+", default=None, choices=STAGES,
                    help="stages to run in this process (default: all, nir/uf/sampled in parallel workers)")
    ap.add_argument("--sample", type=int, default=30, help="users for generative rankers on sampled:19")
    ap.add_argument("--rank-all", default="verbalizer,pointwise",
                    help="sampled: log-probability rankers that also rank all 943 users (the rest: the sample)")
    ap.add_argument("--timing-users", type=int, default=16)
    ap.add_argument("--latency-users", type=int, default=4)
    ap.add_argument("--row-lock", action="store_true", help=f"take {LOCK} per LLM row (not under flock)")
    ap.add_argument("--max-users", type=int, default=0,
                    help="nir stage: a seeded sample of this many of the 170 users (a smoke run; needs --out)")
    ap.add_argument("--out", default=None, help=f"write STEM.json and STEM.md (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--response-cache", default=None,
                    help="SQLite file of the LLM response cache (default: <llmrec cache>/llm-responses.sqlite)")
    ap.add_argument("--rankers", default="",
                    help="nir / sampled stages: only these LLM rankers (comma-separated, e.g. listwise,nir); the stage's other "
                         "LLM rows are kept from the existing JSON")
    args = ap.parse_args()
    ONLY_RANKERS = {x for x in args.rankers.split(",") if x}
    if ONLY_RANKERS - set(RANKERS):
        ap.error(f"--rankers: unknown {sorted(ONLY_RANKERS - set(RANKERS))}; choose from {RANKERS}")
    if args.max_users and args.out is None:
        ap.error("--max-users writes a partial table: give --out (the committed tables are never overwritten)")
    ROW_LOCK = args.row_lock
    OUT = Path(args.out).with_suffix("") if args.out else OUT
    MAX_USERS = args.max_users
    RESPONSE_CACHE = Path(args.response_cache) if args.response_cache else None
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
    with file_lock("/tmp/llmrec-bench-rankers-results.lock"):
        old = json.loads(path.read_text()) if path.exists() else {"rows": []}
        _write(old, new_rows, minutes)


def _write(old: dict[str, Any], new_rows: list[dict[str, Any]], minutes: dict[str, float]) -> None:
    path = OUT.with_suffix(".json")
    # keep the longest time a stage took: a rerun answered from the cache is not the cost of computing it
    minutes = {**old.get("stage_minutes", {}),
               **{k: max(v, old.get("stage_minutes", {}).get(k, 0.0)) for k, v in minutes.items()}}
    # a row answered wholly from the cache keeps the time measured when it was computed
    key = lambda r: (r["stage"], r["dataset"], r["protocol"], r["scorer"], str(r["users"]))  # noqa: E731
    for r in old["rows"]:
        r.setdefault("rule", legacy_rule(r))
    before = {key(r): r for r in old["rows"]}
    for r in new_rows:
        prev = before.get(key(r))
        if r.get("s_per_user") is None and prev is not None and prev.get("s_per_user") is not None:
            r["s_per_user"] = prev["s_per_user"]
    done = {r["stage"] for r in new_rows}
    if ONLY_RANKERS:  # a partial stage: replace only the rows it recomputed
        fresh = {key(r) for r in new_rows}
        rows = [r for r in old["rows"] if key(r) not in fresh] + new_rows
    else:
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
