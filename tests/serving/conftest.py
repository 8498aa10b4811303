"""Fixtures of the serving tests: scorer specs over the tiny MovieLens fixture (a two-component hybrid, a tiny
SASRec trained here) and a fake LLM backend. Helpers (a real server on a free port): serve_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_helpers import TESTS, load_ranker_fakes


@pytest.fixture()
def fake_llm(monkeypatch):
    """Every backend the scorers make is a deterministic fake (no model is loaded)."""
    fakes = load_ranker_fakes()
    monkeypatch.setattr("llmrec.llm.make_backend", lambda spec=None, **kw: fakes.FakeBackend())


@pytest.fixture(scope="session")
def hybrid_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hybrid") / "pop_itemknn.yaml"
    path.write_text("components:\n  - {name: pop, scorer: pop}\n  - {name: itemknn, scorer: itemknn}\nfusion: rrf\n")
    return path


@pytest.fixture(scope="session")
def sasrec_run(tmp_path_factory) -> Path:
    """A tiny SASRec trained for 2 epochs on the fixture (seconds)."""
    import torch

    from llmrec.data import leave_one_out, load_dataset
    from llmrec.training import TrainConfig, train
    from llmrec.training.loop import stages_from_objectives

    threads = torch.get_num_threads()
    ds = load_dataset("ml-100k", TESTS / "fixtures")
    out = tmp_path_factory.mktemp("runs") / "sasrec"
    cfg = TrainConfig(dataset="ml-100k", stages=stages_from_objectives("next_item", 2),
                      model_options={"max_len": 8, "hidden": 16, "n_heads": 2, "dropout": 0.1}, threads=1, test=False)
    train(cfg, out, ds, leave_one_out(ds), progress=False)
    torch.set_num_threads(threads)  # train() sets the process-wide thread count
    return out
