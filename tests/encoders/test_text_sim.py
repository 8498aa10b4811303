"""The `text` scorer: spec parsing, and shapes for full ranking (B, N+1) and candidate columns (B, C) for
every user encoder, through the same `evaluate` as `llmrec evaluate`."""

from __future__ import annotations

import pytest
import torch

from llmrec.data.candidates import make_candidates
from llmrec.errors import ConfigError
from llmrec.evaluation import evaluate
from llmrec.scorers import SCORERS, ScorerContext, build_scorer
from llmrec.scorers.text_sim import TextSpec
from llmrec.types import ScoreBatch

SEQ = {"seq": {"hidden": 16, "heads": 2, "layers": 1, "experts": 2, "epochs": 2, "batch_size": 8, "max_len": 8}}


@pytest.mark.parametrize("arg, want", [
    (None, ("minilm", None, "mean")),
    ("minilm", ("minilm", None, "mean")),
    ("minilm+adapters/ml-100k-minilm-lora", ("minilm", "adapters/ml-100k-minilm-lora", "mean")),
    ("minilm+adapters/x@seq", ("minilm", "adapters/x", "seq")),
    ("/models/enc@mean", ("/models/enc", None, "mean")),
    ("sentence-transformers/all-MiniLM-L6-v2@seq", ("sentence-transformers/all-MiniLM-L6-v2", None, "seq")),
])
def test_spec_parsing(arg, want):
    s = TextSpec.parse(arg)
    assert (s.encoder, s.adapter, s.user) == want


@pytest.mark.parametrize("bad", ["minilm@transformer", "minilm+", "+adapters/x"])
def test_bad_specs(bad):
    with pytest.raises(ConfigError):
        TextSpec.parse(bad)


def test_registered():
    build_scorer("pop")  # loads the scorer modules
    assert "text" in SCORERS


@pytest.mark.parametrize("user", ["mean", "seq"])
@pytest.mark.parametrize("protocol", ["full", "sampled:10"])
def test_scorer_shapes_and_evaluation(tiny_model, shop_a, user, protocol):
    ds, split = shop_a
    scorer = build_scorer(f"text:{tiny_model}@{user}", ScorerContext(seed=0, options=dict(SEQ)))
    scorer.fit(ds, split)
    cands = make_candidates(ds, split, protocol, "test", 0)
    users = torch.from_numpy(cands.users[:4])
    hist = torch.from_numpy(split.history(cands.users[:4], "test"))
    full = scorer.score(ScoreBatch(users, hist, None))
    assert full.shape == (4, ds.n_items + 1) and torch.isfinite(full).all()
    if cands.items is not None:
        cols = torch.from_numpy(cands.items[:4])
        part = scorer.score(ScoreBatch(users, hist, cols))
        assert part.shape == cols.shape
        assert torch.allclose(part, full.gather(1, cols), atol=1e-5)  # same scores either way
    res = evaluate(scorer, ds, split, cands, progress=False)
    assert res.metrics["HR@10"] >= 0 and len(res.per_user) == len(cands.users)
    assert res.scorer_report["user_encoder"] == user


def test_adapter_spec_scores(tiny_model, shop_a, tmp_path):
    from llmrec.encoders.lora import LoraTuneConfig, tune_encoder

    ds, split = shop_a
    out = tmp_path / "ad"
    tune_encoder(ds, split, LoraTuneConfig(model=tiny_model, epochs=1, batch_size=8, eval_protocols=[]), out,
                 progress=False)
    plain = build_scorer(f"text:{tiny_model}")
    tuned = build_scorer(f"text:{tiny_model}+{out}")
    for s in (plain, tuned):
        s.fit(ds, split)
    batch = ScoreBatch(torch.tensor([1, 2]), torch.from_numpy(split.history([1, 2], "test")), None)
    assert not torch.allclose(plain.score(batch), tuned.score(batch))
    assert tuned.report()["adapter"] == str(out)
