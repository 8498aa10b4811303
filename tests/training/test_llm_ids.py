"""LLM-IDs (a frozen causal LM + LoRA over new item tokens) on a tiny random Llama: only the trained tensors are
state, item rows start from their titles, the base weights are checked, next_item reaches every trained tensor,
and the ID training loop trains, saves, scores (`run:DIR`) and resumes it like any ID model."""

from __future__ import annotations

import pytest
import torch

from llmrec.errors import CheckpointError
from llmrec.models import build_model
from llmrec.models import checkpoint as ckpt
from llmrec.objectives import ObjectiveContext, SeqBatch, build_objective
from llmrec.scorers.id_model import IDModelScorer
from llmrec.training import ObjectiveSpec, StageConfig, TrainConfig, train
from llmrec.training.windows import make_windows
from llmrec.types import ScoreBatch

N = 16


@pytest.fixture
def lm(tiny_llama) -> str:
    return tiny_llama(0)


def model(lm: str, **kw):
    torch.manual_seed(0)
    return build_model("llm-ids", N, {"llm": lm, "max_len": 8, "r": 4, **kw})


def test_state_is_the_item_table_and_lora_only(lm):
    m = model(lm)
    sd = m.state_dict()
    assert set(sd) == {"item_emb.weight"} | {k for k in sd if k.startswith("lora.")}
    assert all("lora_A" in k or "lora_B" in k for k in sd if k.startswith("lora."))
    assert sd["item_emb.weight"].shape == (N + 2, m.hidden)
    # the LoRA parameters are the LM's own: changing them changes what the LM computes
    seq = torch.tensor([[0, 0, 3, 5, 7]])
    before = m.encode(seq).detach().clone()
    with torch.no_grad():
        for k, p in m.lora.items():
            if "lora_B" in k:
                p.add_(0.5)
    assert not torch.allclose(m.encode(seq), before)
    assert {id(p) for p in m.parameters()} == {id(m.item_emb.weight)} | {id(p) for p in m.lora.values()}


def test_item_rows_start_from_their_titles(lm):
    from transformers import AutoTokenizer

    titles = [f"Movie number {i}" for i in range(1, N + 1)]
    m = model(lm)
    m.init_from_catalog(titles)
    tok = AutoTokenizer.from_pretrained(lm)
    words = m._lm.get_input_embeddings().weight
    ids = tok(" " + titles[4], add_special_tokens=False).input_ids
    torch.testing.assert_close(m.item_emb.weight[5], words[ids].mean(0))
    assert (m.item_emb.weight[0] == 0).all()  # padding stays zero
    r = model(lm, init="random")
    r.init_from_catalog(titles)  # a no-op for init: random
    assert not torch.allclose(r.item_emb.weight[5], words[ids].mean(0))
    with pytest.raises(ValueError, match="3 titles for 16 items"):
        m.init_from_catalog(titles[:3])


def test_the_base_weights_are_recorded_and_checked(lm, tiny_llama):
    m = model(lm)
    assert len(m.config.base_fingerprint) == 64
    again = model(lm, base_fingerprint=m.config.base_fingerprint)  # the same base: fine
    assert again.config.base_fingerprint == m.config.base_fingerprint
    with pytest.raises(CheckpointError, match="use the base model it was trained on"):
        model(tiny_llama(1), base_fingerprint=m.config.base_fingerprint)


def test_bad_options_are_config_errors(lm):
    from llmrec.errors import ConfigError

    with pytest.raises(ConfigError, match=r"target_modules \['qq_proj'\] do not fit"):
        model(lm, target_modules=["qq_proj"])
    with pytest.raises(ConfigError, match="prompt must not be empty"):
        model(lm, prompt="  ")


def test_next_item_reaches_the_item_table_and_every_lora_matrix(lm, synth):
    split = synth[1]
    m = build_model("llm-ids", split.n_items, {"llm": lm, "max_len": 6, "r": 4})
    obj = build_objective("next_item", m, {}, ObjectiveContext(split=split, epochs=1))
    w = make_windows(split, 6)
    out = obj(SeqBatch(w.seq, w.fresh, w.users, torch.Generator().manual_seed(0)))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert m.item_emb.weight.grad is not None and m.item_emb.weight.grad[1:].abs().sum() > 0
    # peft starts B at zero, so A gets no gradient at step 0; B gets one everywhere
    for k, p in m.lora.items():
        if "lora_B" in k:
            assert p.grad is not None and p.grad.abs().sum() > 0, k


def config(lm: str, epochs: int = 3) -> TrainConfig:
    return TrainConfig(dataset="synth", model="llm-ids", model_options={"llm": lm, "max_len": 8, "r": 4},
                       stages=[StageConfig([ObjectiveSpec("next_item")], epochs=epochs, batch_size=16, lr=1e-2,
                                           patience=epochs)], threads=1, bucket=2)


def test_the_loop_trains_saves_scores_and_resumes_it(lm, tmp_path, synth):
    ds, split = synth
    res = train(config(lm), tmp_path / "full", dataset=ds, split=split, progress=False)
    assert 0.0 <= res.test["NDCG@10"] <= 1.0
    tensors = ckpt.load_tensors(tmp_path / "full" / ckpt.MODEL_FILE)
    assert set(tensors) == {"item_emb.weight"} | {k for k in tensors if k.startswith("lora.")}  # no base weights
    info = ckpt.read_model_info(tmp_path / "full")
    assert info["options"]["base_fingerprint"] and info["options"]["llm"] == lm
    # the saved run scores as run:DIR, the same as the model in memory
    loaded, _ = ckpt.load_model(tmp_path / "full")
    scorer = IDModelScorer.from_run(tmp_path / "full")
    scorer.fit(ds, split)
    hist = torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]])
    full = scorer.score(ScoreBatch(torch.tensor([1, 2]), hist, None))
    torch.testing.assert_close(full[:, 1:], loaded.item_logits(loaded.encode(hist)))
    # interrupted after one epoch and resumed == uninterrupted
    cut = tmp_path / "cut"
    train(config(lm), cut, dataset=ds, split=split, progress=False, stop_after_epochs=1)
    again = train(config(lm), cut, dataset=ds, split=split, progress=False)
    assert again.test == res.test
    a, b = ckpt.load_tensors(cut / ckpt.MODEL_FILE), tensors
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_it_learns_the_synthetic_structure(lm, tmp_path, synth):
    """The loops of the synthetic data (item i → i+1) are learnt through the item tokens and LoRA."""
    ds, split = synth
    res = train(config(lm, epochs=12), tmp_path / "r", dataset=ds, split=split, progress=False)
    assert res.test["HR@10"] > 0.8  # as the ID models' loop test: random would be 10/16 of the unseen items at best
