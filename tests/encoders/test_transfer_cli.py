"""Cross-domain use and the CLI: `llmrec tune-encoder` on one shop, `llmrec evaluate --scorer text:M+ADAPTER`
zero-shot on the other (item-disjoint) shop, as a user would run them."""

from __future__ import annotations

import json

from llmrec.cli import main

from .conftest import SHOPS


def test_tune_on_one_shop_evaluate_on_the_other(tiny_model, tmp_path, capsys):
    out = tmp_path / "adapters" / "shop-a"
    rc = main(["tune-encoder", "--dataset", str(SHOPS / "shop_a"), "--out", str(out), "--model", tiny_model,
               "--objective", "next_item,dp", "--epochs", "1", "--set", "batch_size=8", "--set",
               "eval_protocols=[sampled:5]", "--json"])
    assert rc == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["dataset"]["name"] == "shop_a" and manifest["objective"] == ["next_item", "dp"]
    for scorer in (f"text:{tiny_model}", f"text:{tiny_model}+{out}"):
        rc = main(["evaluate", "--dataset", str(SHOPS / "shop_b"), "--scorer", scorer, "--protocol", "sampled:10",
                   "--json"])
        assert rc == 0
        res = json.loads(capsys.readouterr().out)
        assert res["dataset"] == "shop_b" and res["n_users"] == 30 and 0 <= res["HR@10"] <= 1


def test_cli_errors_are_one_line(tiny_model, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    rc = main(["evaluate", "--dataset", str(SHOPS / "shop_b"), "--scorer", f"text:{tiny_model}+{bad}"])
    assert rc == 2
    assert "not a complete adapter" in capsys.readouterr().err
