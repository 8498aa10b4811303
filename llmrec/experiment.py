"""Experiments as config: preparation steps (training runs), then tables of methods evaluated on one candidate
protocol each and compared (`llmrec experiment CONFIG.yaml`).

A preparation step is an `llmrec …` command line, run as its own process (`python -m llmrec …`, like a Makefile
recipe); the tables call the library (`llmrec.pipelines.evaluate.run_evaluation`).

Everything is resumable: a preparation step is skipped when what it creates exists (and the training commands
resume their own interrupted runs); a method whose run folder holds metrics for the same evaluation config is
not evaluated again; LLM answers come from the response cache on a rerun.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmrec.config import load_config, save_config, to_dict
from llmrec.errors import LLMRecError


@dataclass
class StepConfig:
    """One `llmrec …` command run before the tables (e.g. training SASRec), in its own process; skipped when
    `creates` exists."""

    name: str = ""
    args: list[str] = field(default_factory=list)
    creates: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.args or not self.creates:
            raise ValueError("every prepare step needs name, args and creates")


@dataclass
class MethodConfig:
    name: str = ""
    scorer: str = ""
    llm: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.scorer:
            raise ValueError("every method needs a name and a scorer spec")


@dataclass
class TableConfig:
    name: str = ""
    protocol: str = "full"
    max_users: int = 0  # a seeded user sample shared by every method of the table (0 = all users)
    metric: str = "NDCG@10"
    reference: str | None = None  # significance tests against this method (default: the best)
    title: str = ""
    methods: list[MethodConfig] = field(default_factory=list)


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    title: str = ""
    dataset: str = "ml-100k"
    seed: int = 0
    runs_dir: str = "runs/experiment"  # per-method evaluation folders
    results_dir: str = "eval/results/experiment"  # comparison reports (committed)
    prepare: list[StepConfig] = field(default_factory=list)
    tables: list[TableConfig] = field(default_factory=list)


def _say(msg: str) -> None:
    print(f"[experiment] {msg}", file=sys.stderr, flush=True)


def run_experiment(cfg: ExperimentConfig, data_dir: str | None = None, only: list[str] | None = None,
                   config_path: str | None = None) -> dict[str, Any]:
    from llmrec.data.canonical import DataConfig
    from llmrec.evaluation.compare import compare_runs, to_markdown, write_report
    from llmrec.pipelines.evaluate import EvaluateConfig, run_evaluation

    results = Path(cfg.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    save_config(cfg, results / "config.yaml")
    timings: dict[str, float] = {}
    for step in cfg.prepare:
        if Path(step.creates).exists():
            _say(f"prepare {step.name}: {step.creates} exists, skipped")
            continue
        _say(f"prepare {step.name}: llmrec {' '.join(step.args)}")
        t = time.perf_counter()
        code = run_command(list(step.args) + (["--data-dir", data_dir] if data_dir else []))
        timings[f"prepare:{step.name}"] = round(time.perf_counter() - t, 1)
        if code != 0 or not Path(step.creates).exists():
            raise LLMRecError(f"prepare step {step.name!r} failed (exit {code}; {step.creates} not created)")
    summary: dict[str, Any] = {"tables": {}, "timings_s": timings}
    for table in cfg.tables:
        if only and table.name not in only:
            continue
        run_dirs = []
        for m in table.methods:
            out = Path(cfg.runs_dir) / table.name / m.name
            ecfg = EvaluateConfig(dataset=cfg.dataset, scorer=m.scorer, protocol=table.protocol, seed=cfg.seed,
                                  max_users=table.max_users, llm=m.llm, options=dict(m.options), data=DataConfig())
            wanted = {**to_dict(ecfg), "data_dir": data_dir}
            done = out / "metrics.json"
            if done.is_file() and (out / "config.json").is_file() and json.loads((out / "config.json").read_text()) == wanted:
                _say(f"{table.name}/{m.name}: done before, kept")
            else:
                _say(f"{table.name}/{m.name}: evaluating {m.scorer} on {table.protocol}")
                t = time.perf_counter()
                res = run_evaluation(ecfg, data_dir)
                res.config = wanted
                res.save(out)
                timings[f"{table.name}/{m.name}"] = round(time.perf_counter() - t, 1)
                _say(f"{table.name}/{m.name}: {table.metric} {res.metrics.get(table.metric, float('nan')):.4f}")
            run_dirs.append(out)
        metrics = tuple(dict.fromkeys(("HR@10", "NDCG@10", "MRR", table.metric)))
        report = compare_runs(run_dirs, table.metric, metrics, table.reference, cfg.seed)
        title = table.title or f"{cfg.title or cfg.name}: {table.name}"
        write_report(report, results / table.name, title)
        summary["tables"][table.name] = report
        print(to_markdown(report, title))
    from llmrec.io import atomic_write_json

    atomic_write_json(results / "summary.json", {"config": to_dict(cfg), "source": config_path, **summary})
    return summary


def run_command(argv: list[str]) -> int:
    """`llmrec ARGV…` in a child process with this Python (its output goes where ours goes); its exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    return subprocess.run([sys.executable, "-m", "llmrec", *argv], check=False).returncode


def load_experiment(path: str, overrides: list[str] | None = None) -> ExperimentConfig:
    return load_config(ExperimentConfig, path, overrides)
