"""Compare evaluation runs on the same candidates: per-user metrics, bootstrap confidence intervals, paired
significance tests, and a report (Markdown + JSON + PNG plots of quality and of quality against cost).

A run is a folder written by `llmrec evaluate --out DIR` (metrics.json + per_user.csv.gz). Runs whose candidate
hashes differ ranked different candidates — different users, negatives or targets — and are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrec.errors import LLMRecError
from llmrec.evaluation.metrics import per_user_metric
from llmrec.io import atomic_write, atomic_write_json, atomic_write_text

N_BOOT = 2000


@dataclass
class Run:
    name: str
    path: Path
    metrics: dict[str, Any]
    per_user: pd.DataFrame  # user, rank, …

    @property
    def seconds_per_user(self) -> float:
        rep = self.metrics.get("scorer_report") or {}
        if "wall_s_per_user" in rep:
            return float(rep["wall_s_per_user"])
        return float(self.metrics.get("seconds", 0.0)) / max(1, int(self.metrics.get("n_users", 1)))

    @property
    def tokens_per_user(self) -> float:
        rep = self.metrics.get("scorer_report") or {}
        tok = _find_tokens(rep)
        return tok / max(1, int(self.metrics.get("n_users", 1)))


def _find_tokens(rep: Any) -> float:
    """Prompt + completion tokens anywhere in a scorer report (hybrids nest their components' reports)."""
    if not isinstance(rep, dict):
        return 0.0
    total = float(rep.get("prompt_tokens", 0) or 0) + float(rep.get("completion_tokens", 0) or 0)
    for k, v in rep.items():
        if isinstance(v, dict) and (k.startswith("component:") or k in ("rerank", "report")):
            total += _find_tokens(v)
    return total


def load_run(path: str | Path, name: str | None = None) -> Run:
    p = Path(path)
    mfile, ufile = p / "metrics.json", p / "per_user.csv.gz"
    if not mfile.is_file() or not ufile.is_file():
        raise LLMRecError(f"{p}: not an evaluation run (expected metrics.json and per_user.csv.gz from "
                          f"`llmrec evaluate --out`)")
    try:
        metrics = json.loads(mfile.read_text())
        per_user = pd.read_csv(ufile)
    except (ValueError, OSError) as e:
        raise LLMRecError(f"{p}: unreadable run files ({e})") from None
    if "rank" not in per_user.columns or "user" not in per_user.columns:
        raise LLMRecError(f"{ufile}: expected columns user and rank")
    return Run(name or p.name, p, metrics, per_user.sort_values("user").reset_index(drop=True))


def bootstrap_ci(values: np.ndarray, seed: int = 0, n_boot: int = N_BOOT, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over users (vectorised resampling)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), (n_boot, len(values)))
    means = values[idx].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def paired_tests(a: np.ndarray, b: np.ndarray, seed: int = 0, n_boot: int = N_BOOT) -> dict[str, float]:
    """a vs b over the same users: mean difference, its bootstrap CI, a two-sided paired-bootstrap p-value
    (users resampled; the bootstrap distribution of the mean difference shifted to 0 is the null, Efron &
    Tibshirani §16.4) and the paired t-test p-value."""
    from scipy import stats

    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), (n_boot, len(d)))
    boot = d[idx].mean(axis=1)
    centred = boot - d.mean()  # the null distribution: differences re-centred at 0
    p_boot = float(min(1.0, np.mean(np.abs(centred) >= abs(d.mean()))))
    if np.allclose(d, d[0]):
        p_t = 0.0 if d[0] != 0 else 1.0
    else:
        p_t = float(stats.ttest_rel(a, b).pvalue)
    lo, hi = float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))
    return {"diff": float(d.mean()), "diff_ci_low": lo, "diff_ci_high": hi, "p_bootstrap": p_boot, "p_ttest": p_t}


def compare_runs(
    paths: list[str | Path], metric: str = "NDCG@10", metrics: tuple[str, ...] = ("HR@10", "NDCG@10", "MRR"),
    reference: str | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Load runs, refuse mismatched candidates, and build the comparison (means, CIs, paired tests against the
    best run by `metric`, or against `reference` when given)."""
    runs = [load_run(p) for p in paths]
    if len(runs) < 1:
        raise LLMRecError("compare needs at least one run folder")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise LLMRecError(f"run folder names must be unique (they name the methods): {names}")
    hashes = {r.name: r.metrics.get("candidates_hash") for r in runs}
    if len(set(hashes.values())) != 1:
        detail = ", ".join(f"{n}: {h}" for n, h in hashes.items())
        raise LLMRecError(f"runs ranked different candidate sets (hashes {detail}); compare runs of one protocol, "
                          f"data set, phase, seed and user sample")
    users0 = runs[0].per_user["user"].to_numpy()
    for r in runs[1:]:
        if not np.array_equal(r.per_user["user"].to_numpy(), users0):
            raise LLMRecError(f"{r.path}: per-user results cover other users than {runs[0].path}")
    values = {r.name: {m: per_user_metric(r.per_user["rank"].to_numpy(), m) for m in metrics} for r in runs}
    if metric not in metrics:
        raise LLMRecError(f"metric {metric!r} must be one of {list(metrics)}")
    ref = reference or max(runs, key=lambda r: values[r.name][metric].mean()).name
    if ref not in values:
        raise LLMRecError(f"reference {ref!r} is not one of the runs: {names}")
    rows = []
    for r in runs:
        row: dict[str, Any] = {"method": r.name, "scorer": r.metrics.get("scorer", "")}
        for m in metrics:
            v = values[r.name][m]
            lo, hi = bootstrap_ci(v, seed)
            row[m] = float(v.mean())
            row[f"{m} CI"] = [lo, hi]
        row["s/user"] = r.seconds_per_user
        row["tokens/user"] = r.tokens_per_user
        rep = r.metrics.get("scorer_report") or {}
        if "parse_rate" in rep:
            row["parse_rate"] = rep["parse_rate"]
            row["invalid_item_rate"] = rep.get("invalid_item_rate")
        if r.name != ref:
            row["vs_ref"] = paired_tests(values[r.name][metric], values[ref][metric], seed)
        rows.append(row)
    rows.sort(key=lambda x: -x[metric])
    m0 = runs[0].metrics
    return {
        "metric": metric,
        "reference": ref,
        "protocol": {k: m0.get(k) for k in ("dataset", "protocol", "phase", "seed", "n_candidates",
                                            "candidates_hash", "split_hash", "n_users")},
        "rows": rows,
        "n_boot": N_BOOT,
    }


def _fmt_ci(row: dict[str, Any], m: str) -> str:
    lo, hi = row[f"{m} CI"]
    return f"{row[m]:.4f} [{lo:.4f}, {hi:.4f}]"


def to_markdown(report: dict[str, Any], title: str = "Comparison") -> str:
    p = report["protocol"]
    metric, ref = report["metric"], report["reference"]
    metrics = [k for k in report["rows"][0] if f"{k} CI" in report["rows"][0]]
    lines = [
        f"# {title}",
        "",
        f"Data set `{p['dataset']}`, protocol `{p['protocol']}` ({p['n_candidates']} candidates per user), phase "
        f"`{p['phase']}`, leave-one-out by time, seed {p['seed']}, {p['n_users']} users; candidate hash "
        f"`{p['candidates_hash']}`. Means with 95% bootstrap CIs over users ({report['n_boot']} resamples); "
        f"paired tests of each method against `{ref}` (the best by {metric} unless named) on per-user {metric}.",
        "",
        "| method | " + " | ".join(metrics) + f" | Δ{metric} vs {ref} | p (bootstrap) | p (t-test) | s/user | tokens/user |",
        "|" + "---|" * (len(metrics) + 6),
    ]
    for row in report["rows"]:
        vs = row.get("vs_ref")
        p_boot = f"<{1 / report['n_boot']:.1g}" if vs and vs["p_bootstrap"] == 0 else (f"{vs['p_bootstrap']:.3g}" if vs else "")
        cmp_ = (f"{vs['diff']:+.4f} | {p_boot} | {vs['p_ttest']:.3g}" if vs else "(reference) | | ")
        lines.append(f"| {row['method']} | " + " | ".join(_fmt_ci(row, m) for m in metrics)
                     + f" | {cmp_} | {row['s/user']:.4g} | {row['tokens/user']:.0f} |")
    llm_rows = [r for r in report["rows"] if "parse_rate" in r]
    if llm_rows:
        lines += ["", "LLM output quality: " + "; ".join(
            f"{r['method']}: parse rate {r['parse_rate']}, invalid-item rate {r['invalid_item_rate']}"
            for r in llm_rows)]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = report["metric"]
    rows = report["rows"]
    names = [r["method"] for r in rows]
    means = np.array([r[metric] for r in rows])
    ci = np.array([r[f"{metric} CI"] for r in rows])
    p = report["protocol"]
    paths = []

    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows) + 2), 4))
    ax.bar(range(len(rows)), means, yerr=[means - ci[:, 0], ci[:, 1] - means], capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel(f"{metric} (95% bootstrap CI)")
    ax.set_title(f"{p['dataset']} · {p['protocol']} · {p['n_users']} users")
    fig.tight_layout()
    path = out_dir / f"{metric.replace('@', '_at_')}.png"
    atomic_write(path, lambda t: fig.savefig(t, dpi=120, format="png"))
    plt.close(fig)
    paths.append(path)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "s/user", "wall seconds per user (log)"),
                           (axes[1], "tokens/user", "LLM tokens per user (log; 0 plotted at 1)")):
        x = np.array([max(r[key], 1e-6 if key == "s/user" else 1.0) for r in rows])
        ax.errorbar(x, means, yerr=[means - ci[:, 0], ci[:, 1] - means], fmt="o", capsize=3)
        for xi, yi, n in zip(x, means, names):
            ax.annotate(n, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
    fig.suptitle(f"quality against cost · {p['dataset']} · {p['protocol']}")
    fig.tight_layout()
    path = out_dir / "quality_vs_cost.png"
    atomic_write(path, lambda t: fig.savefig(t, dpi=120, format="png"))
    plt.close(fig)
    paths.append(path)
    return paths


def write_report(report: dict[str, Any], out_dir: str | Path, title: str = "Comparison",
                 plots: bool = True) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", to_markdown(report, title))
    written = [out / "report.json", out / "report.md"]
    if plots:
        written += plot(report, out)
    return written
