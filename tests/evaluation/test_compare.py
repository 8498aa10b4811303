"""llmrec compare: refusal on different candidates, per-user metrics, paired tests, report files."""

import json

import numpy as np
import pandas as pd
import pytest

from llmrec.cli import main
from llmrec.errors import LLMRecError
from llmrec.evaluation.compare import compare_runs, paired_tests, per_user_metric, write_report


def fake_run(root, name, ranks, cand_hash="abc", report=None):
    d = root / name
    d.mkdir(parents=True)
    users = np.arange(1, len(ranks) + 1)
    pd.DataFrame({"user": users, "target": users, "rank": ranks}).to_csv(d / "per_user.csv.gz", index=False)
    m = {"scorer": name, "dataset": "toy", "protocol": "sampled:3", "phase": "test", "seed": 0, "n_candidates": 4,
         "candidates_hash": cand_hash, "split_hash": "s", "n_users": len(ranks), "seconds": 1.0}
    if report:
        m["scorer_report"] = report
    (d / "metrics.json").write_text(json.dumps(m))
    return d


def test_per_user_metric_golden():
    r = np.array([0, 1, 9, 10, np.inf])
    assert per_user_metric(r, "HR@10").tolist() == [1, 1, 1, 0, 0]
    assert per_user_metric(r, "NDCG@10") == pytest.approx([1, 1 / np.log2(3), 1 / np.log2(11), 0, 0])
    assert per_user_metric(r, "MRR") == pytest.approx([1, 0.5, 0.1, 1 / 11, 0])
    with pytest.raises(LLMRecError):
        per_user_metric(r, "F1")


def test_paired_tests_detect_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    a = rng.random(400)
    assert paired_tests(a + 0.1, a)["p_bootstrap"] < 0.01
    assert paired_tests(a + 0.1, a)["p_ttest"] < 0.01
    b = a + rng.normal(0, 0.1, 400)
    b = b - b.mean() + a.mean()
    res = paired_tests(b, a)
    assert res["p_bootstrap"] > 0.2 and res["p_ttest"] > 0.2


def test_refuses_runs_with_different_candidate_hashes(tmp_path):
    a = fake_run(tmp_path, "a", [0, 1, 2])
    b = fake_run(tmp_path, "b", [0, 1, 2], cand_hash="xyz")
    with pytest.raises(LLMRecError, match="different candidate sets"):
        compare_runs([a, b])


def test_cli_refusal_exit_code(tmp_path, capsys):
    a = fake_run(tmp_path, "a", [0, 1, 2])
    b = fake_run(tmp_path, "b", [0, 1, 2], cand_hash="xyz")
    assert main(["compare", str(a), str(b)]) == 2
    assert "different candidate sets" in capsys.readouterr().err


def test_report_from_fixture_runs(tmp_path):
    rng = np.random.default_rng(1)
    good = fake_run(tmp_path, "good", rng.integers(0, 3, 200).astype(float),
                    report={"prompt_tokens": 2000, "completion_tokens": 200, "parse_rate": 0.9,
                            "invalid_item_rate": 0.05, "wall_s_per_user": 0.5})
    bad = fake_run(tmp_path, "bad", rng.integers(2, 20, 200).astype(float))
    rep = compare_runs([bad, good])
    assert rep["reference"] == "good"
    assert [r["method"] for r in rep["rows"]] == ["good", "bad"]
    row_bad = rep["rows"][1]
    assert row_bad["vs_ref"]["diff"] < 0 and row_bad["vs_ref"]["p_ttest"] < 0.001
    assert rep["rows"][0]["tokens/user"] == pytest.approx(11.0)
    lo, hi = rep["rows"][0]["NDCG@10 CI"]
    assert lo < rep["rows"][0]["NDCG@10"] < hi
    files = write_report(rep, tmp_path / "report", "Toy")
    names = {f.name for f in files}
    assert {"report.md", "report.json", "NDCG_at_10.png", "quality_vs_cost.png"} <= names
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| good |" in md and "parse rate 0.9" in md
    assert (tmp_path / "report" / "NDCG_at_10.png").read_bytes()[:4] == b"\x89PNG"


def test_not_a_run_folder(tmp_path):
    with pytest.raises(LLMRecError, match="not an evaluation run"):
        compare_runs([tmp_path])
