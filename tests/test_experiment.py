"""`llmrec experiment`: prepare steps, tables, comparison reports, and resuming without recomputation."""

import json

import yaml

from llmrec.cli import main


def test_experiment_end_to_end_and_resume(tmp_path, fixtures, tmp_cache, capsys):
    cfg = {
        "name": "toy",
        "dataset": "ml-100k",
        "runs_dir": str(tmp_path / "runs"),
        "results_dir": str(tmp_path / "results"),
        "prepare": [{"name": "marker", "creates": str(tmp_path / "prep"),
                     "args": ["evaluate", "--dataset", "ml-100k", "--scorer", "random", "--out", str(tmp_path / "prep")]}],
        "tables": [{"name": "sampled", "protocol": "sampled:3",
                    "methods": [{"name": "pop", "scorer": "pop"}, {"name": "knn", "scorer": "itemknn"}]}],
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["experiment", str(path), "--data-dir", str(fixtures)]) == 0
    rep = json.loads((tmp_path / "results" / "sampled" / "report.json").read_text())
    assert {r["method"] for r in rep["rows"]} == {"pop", "knn"}
    assert (tmp_path / "results" / "config.yaml").is_file()
    first = (tmp_path / "runs" / "sampled" / "pop" / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["experiment", str(path), "--data-dir", str(fixtures)]) == 0
    err = capsys.readouterr().err
    assert "done before, kept" in err and "exists, skipped" in err
    assert (tmp_path / "runs" / "sampled" / "pop" / "metrics.json").stat().st_mtime_ns == first


def test_experiment_unknown_key(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text("tables:\n  - name: t\n    protocl: full\n")
    assert main(["experiment", str(path)]) == 2
    assert "unknown key 'protocl'" in capsys.readouterr().err
