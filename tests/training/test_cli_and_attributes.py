"""`llmrec pretrain` → `finetune` (next-item and attributes) → `evaluate --scorer run:DIR`, and attribute heads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llmrec.cli import main
from llmrec.models.checkpoint import load_model
from llmrec.training.attributes import AttributeConfig, attribute_labels, finetune_attribute, user_split

TINY = ["--set", "model_options.hidden=16", "--set", "model_options.max_len=8", "--set", "threads=1",
        "--no-progress"]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, synth_dir):
    out = tmp_path_factory.mktemp("runs") / "pre"
    assert main(["pretrain", "--dataset", str(synth_dir), "--objective", "cl4srec", "--epochs", "2",
                 "--out", str(out), *TINY]) == 0
    return out


def test_cli_pretrain_finetune_evaluate(tmp_path, synth_dir, pretrained, capsys):
    ft = tmp_path / "ft"
    assert main(["finetune", "--run", str(pretrained), "--task", "next-item", "--out", str(ft), "--epochs", "3",
                 "--set", "threads=1", "--no-progress", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test"]["NDCG@10"] > 0
    info = json.loads((ft / "model.json").read_text())
    assert info["init_from"] == str(pretrained) and info["task"] == "next-item"
    assert main(["evaluate", "--dataset", str(synth_dir), "--scorer", f"run:{ft}", "--protocol", "sampled:5",
                 "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["protocol"] == "sampled:5" and 0 <= metrics["HR@5"] <= 1 and metrics["n_users"] > 0


def test_cli_attribute_finetune(tmp_path, pretrained, capsys):
    out = tmp_path / "gender"
    assert main(["finetune", "--run", str(pretrained), "--task", "gender", "--out", str(out), "--epochs", "5",
                 "--set", "threads=1", "--no-progress"]) == 0
    res = json.loads((out / "result.json").read_text())
    assert res["metric"] == "AUC" and 0 <= res["test"] <= 1 and res["n_users"]["test"] > 0
    assert "gender: test AUC" in capsys.readouterr().out
    assert main(["evaluate", "--dataset", "x", "--scorer", f"run:{out}"]) == 2  # an attribute run is no recommender


def test_cli_errors_are_one_line(tmp_path, synth_dir, pretrained, capsys):
    assert main(["pretrain", "--dataset", str(synth_dir), "--model", "sasrec", "--objective", "masked_item",
                 "--out", str(tmp_path / "x"), *TINY]) == 2
    assert "needs a bidirectional encoder" in capsys.readouterr().err
    assert main(["evaluate", "--dataset", "ml-100k", "--data-dir", "tests/fixtures", "--scorer",
                 f"run:{pretrained}"]) == 2
    assert "items" in capsys.readouterr().err
    assert main(["pretrain", "--dataset", str(synth_dir), "--objective", "nope", "--out", str(tmp_path / "y"),
                 *TINY]) == 2
    assert "unknown objective 'nope'" in capsys.readouterr().err


def test_user_split_is_fixed_and_disjoint():
    users = np.arange(1, 101)
    a, b = user_split(users, 0), user_split(users, 0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sum(len(v) for v in a.values()) == 100 and len(a["test"]) == 20
    assert not set(a["train"]) & set(a["test"]) and not set(a["valid"]) & set(a["test"])


def test_attribute_labels_age_groups(synth):
    ds, _ = synth
    users, labels, names = attribute_labels(ds, "age")
    ages = ds.users.loc[users, "age"].astype(int).to_numpy()
    assert names[0] == "<18" and len(names) == 7
    assert (labels[ages < 25] == 1).all() and (labels[ages >= 56] == 6).all()


def test_attribute_head_learns_gender(tmp_path, synth, pretrained):
    ds, split = synth
    model, _ = load_model(pretrained)
    model.train()
    res = finetune_attribute(model, ds, split, AttributeConfig(task="gender", epochs=20, lr=3e-3, batch_size=8, threads=1),
                             tmp_path / "g", progress=False)
    assert res["test"] > 0.8  # gender follows the half of the catalogue a user lives in
    assert (tmp_path / "g" / "head.safetensors").is_file()
