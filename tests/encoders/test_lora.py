"""LoRA tuning and adapters: only LoRA weights change, save → load is exact, corrupted folders fail clearly,
an interrupted run resumes to the same weights, and training never reads validation or test items."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from llmrec.encoders import contrastive
from llmrec.encoders.lora import LoraTuneConfig, attach_lora, load_adapter, read_manifest, tune_encoder
from llmrec.encoders.text_encoder import TextEncoder
from llmrec.errors import CheckpointError, ConfigError


def _cfg(model: str, **kw) -> LoraTuneConfig:
    base = dict(model=model, epochs=1, batch_size=8, samples_per_user=2, refresh_every=2,
                eval_protocols=["sampled:5"])
    return LoraTuneConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def adapter(tiny_model, shop_a, tmp_path_factory) -> Path:
    ds, split = shop_a
    out = tmp_path_factory.mktemp("adapter") / "shop-a-lora"
    tune_encoder(ds, split, _cfg(tiny_model, objectives=["next_item", "cooc", "dp"], lr=5e-3), out, progress=False)
    return out


def test_adapter_folder_and_manifest(adapter, shop_a):
    ds, split = shop_a
    names = sorted(p.name for p in adapter.iterdir())
    assert names == ["adapter_config.json", "adapter_model.safetensors", "manifest.json"]
    m = read_manifest(adapter)
    assert m["dataset"]["name"] == "shop_a" and m["dataset"]["split_hash"] == split.hash
    assert m["objective"] == ["next_item", "cooc", "dp"]
    assert m["peft"]["trainable_params"] > 0 and m["training"]["steps"] > 0
    assert set(m["metrics"]["valid"]) == {"base", "tuned"}
    assert set(m["files"]) == {"adapter_config.json", "adapter_model.safetensors"}


def test_only_lora_weights_change(tiny_model, shop_a):
    """Train with an optimiser that is handed *every* parameter: only the LoRA tensors may move."""
    ds, split = shop_a
    cfg = _cfg(tiny_model, objectives=["next_item", "cooc", "dp"], lr=1e-2)
    enc = TextEncoder.load(tiny_model)
    peft_model = attach_lora(enc, cfg)
    before = {n: p.detach().clone() for n, p in enc.st.named_parameters()}
    assert all("lora_" in n for n, p in enc.st.named_parameters() if p.requires_grad)
    opt = torch.optim.AdamW(enc.st.parameters(), lr=1e-2)
    streams = contrastive.build_objectives(enc, ds, split, cfg)
    enc.st.train()
    for step in range(3):
        loss = 0
        for s in streams:
            s.before_step(step)
            loss = loss + s.loss(s.epoch_batches(np.random.default_rng(step), 1)[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {n for n, p in enc.st.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert any("lora_B" in n for n in changed)  # B starts at 0: training moved it
    assert peft_model is enc.hf_model


def test_saved_adapter_holds_only_lora_tensors(adapter):
    from safetensors.torch import load_file

    saved = load_file(str(adapter / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)
    assert any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k)


def test_save_load_identical_embeddings_and_merge(adapter, tiny_model, shop_a):
    ds, _ = shop_a
    a = TextEncoder.load(tiny_model, adapter).encode_catalog(ds.items, cache=False)
    b = TextEncoder.load(tiny_model, adapter).encode_catalog(ds.items, cache=False)
    assert torch.equal(a, b)
    merged = TextEncoder.load(tiny_model, adapter, merge=True)
    assert merged.merged and not hasattr(merged.hf_model, "peft_config")
    assert torch.allclose(merged.encode_catalog(ds.items, cache=False), a, atol=1e-5)
    base = TextEncoder.load(tiny_model).encode_catalog(ds.items, cache=False)
    assert not torch.allclose(base, a, atol=1e-4)


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.mark.parametrize("damage", ["truncate_weights", "edit_manifest", "missing_config", "bad_json",
                                    "truncate_no_manifest", "missing_folder"])
def test_corrupted_adapter_raises_checkpoint_error(adapter, tiny_model, tmp_path, damage):
    bad = _copy(adapter, tmp_path / "bad")
    w = bad / "adapter_model.safetensors"
    if damage == "truncate_weights":
        w.write_bytes(w.read_bytes()[:100])
    elif damage == "edit_manifest":
        m = json.loads((bad / "manifest.json").read_text())
        m["files"]["adapter_model.safetensors"] = "0" * 64
        (bad / "manifest.json").write_text(json.dumps(m))
    elif damage == "missing_config":
        (bad / "adapter_config.json").unlink()
    elif damage == "bad_json":
        (bad / "manifest.json").write_text("{not json")
    elif damage == "truncate_no_manifest":
        (bad / "manifest.json").unlink()
        w.write_bytes(w.read_bytes()[:100])
    elif damage == "missing_folder":
        bad = tmp_path / "nowhere"
    with pytest.warns(UserWarning) if damage == "truncate_no_manifest" else _nullcontext():
        with pytest.raises(CheckpointError, match=str(bad.name)):
            TextEncoder.load(tiny_model, bad)


def test_adapter_of_another_base_model_is_refused(adapter, tmp_path):
    # the packaged MiniLM is another base than the tiny model the adapter was trained on
    with pytest.raises(CheckpointError, match="trained on base model"):
        TextEncoder.load("minilm", adapter)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def test_resume_after_interruption_equals_uninterrupted(tiny_model, shop_a, tmp_path):
    from safetensors.torch import load_file

    ds, split = shop_a
    cfg = _cfg(tiny_model, epochs=2, objectives=["next_item", "dp"], eval_protocols=[])
    tune_encoder(ds, split, cfg, tmp_path / "straight", progress=False)
    stopped = tune_encoder(ds, split, cfg, tmp_path / "resumed", progress=False, stop_after_epochs=1)
    assert stopped == {"stopped_after_epoch": 1} and (tmp_path / "resumed" / "checkpoint.pt").is_file()
    m = tune_encoder(ds, split, cfg, tmp_path / "resumed", progress=False)
    assert not (tmp_path / "resumed" / "checkpoint.pt").exists()
    assert len(m["training"]["log"]) == 2
    a = load_file(str(tmp_path / "straight" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a finished adapter is not overwritten silently; another config cannot resume a checkpoint
    with pytest.raises(CheckpointError, match="already holds"):
        tune_encoder(ds, split, cfg, tmp_path / "straight", progress=False)
    tune_encoder(ds, split, cfg, tmp_path / "other", progress=False, stop_after_epochs=1)
    with pytest.raises(CheckpointError, match="different run"):
        tune_encoder(ds, split, _cfg(tiny_model, epochs=2, lr=1e-2, eval_protocols=[]), tmp_path / "other",
                     progress=False)


def test_training_streams_never_touch_validation_or_test_items(tiny_model, shop_a):
    """Relabel every validation/test item as a fresh id that occurs nowhere else: no drawn example may hold one."""
    from dataclasses import replace

    ds, split = shop_a
    users = split.eval_users("valid")
    last = split.indptr[users + 1] - 1
    items = split.items.copy()
    fresh_valid = ds.n_items + 1 + np.arange(len(users))
    fresh_test = fresh_valid + len(users)
    items[last - 1], items[last] = fresh_valid, fresh_test
    n_items = int(fresh_test.max())
    sp = replace(split, items=items, n_items=n_items)
    import pandas as pd

    from llmrec.types import ItemCatalog

    frame = ds.items.frame.reindex(range(1, n_items + 1))
    frame = frame.fillna("held-out item")
    ds2 = replace(ds, items=ItemCatalog(frame, ds.items.text_fields), item_index=pd.Index(range(n_items)))
    enc = TextEncoder.load(tiny_model)
    cfg = _cfg(tiny_model, objectives=["next_item", "cooc", "dp"])
    held = set(fresh_valid) | set(fresh_test)
    for stream in contrastive.build_objectives(enc, ds2, sp, cfg):
        for batch in stream.epoch_batches(np.random.default_rng(0), 5):
            for key, arr in batch.items():
                ids = arr if key != "row" else np.array([], dtype=np.int64)
                assert not held & set(np.asarray(ids).ravel().tolist()), (stream.name, key)
        if stream.name == "dp":  # only items that occur in training are paired with their fields
            train = np.concatenate(sp.history_lists(np.arange(1, sp.n_users + 1), "train"))
            assert stream.n_examples == len(np.unique(train)) and not held & set(train.tolist())


def test_info_nce_equals_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(6, 5, generator=g), dim=1)
    k = torch.nn.functional.normalize(torch.randn(6, 5, generator=g), dim=1)
    same = torch.zeros(6, 6, dtype=torch.bool)
    same[0, 3] = same[3, 0] = True
    got = contrastive.info_nce(q, k, 0.1, same)
    naive = []
    for i in range(6):
        pos = torch.exp(q[i] @ k[i] / 0.1)
        den = sum(torch.exp(q[i] @ k[j] / 0.1) for j in range(6) if j == i or not same[i, j])
        naive.append(-torch.log(pos / den))
    assert torch.allclose(got, torch.stack(naive).mean(), atol=1e-5)


def test_config_validation(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="objectives"):
        LoraTuneConfig(objectives=["mlm"])
    from llmrec.data import leave_one_out, load_dataset

    seq = tmp_path / "seq.txt"
    seq.write_text("u1 a b c d\nu2 b c d e\nu3 a c e b\n")
    ds = load_dataset(seq)
    with pytest.raises(ConfigError, match="dp"):
        tune_encoder(ds, leave_one_out(ds), _cfg(tiny_model, objectives=["dp"], eval_protocols=[]), tmp_path / "x",
                     progress=False)


def test_load_adapter_twice_is_refused(adapter, tiny_model):
    enc = TextEncoder.load(tiny_model, adapter)
    with pytest.raises(CheckpointError, match="already carries"):
        load_adapter(enc, adapter)


def test_catalog_negatives_make_the_task_harder(tiny_model, shop_a):
    ds, split = shop_a
    enc = TextEncoder.load(tiny_model)
    losses = {}
    for neg in ("batch", "catalog"):
        cfg = _cfg(tiny_model, negatives=neg)
        stream = contrastive.build_objectives(enc, ds, split, cfg)[0]
        batch = stream.epoch_batches(np.random.default_rng(0), 1)[0]
        stream.before_step(0)
        with torch.no_grad():
            losses[neg] = float(stream.loss(batch))
    assert np.isfinite(losses["catalog"]) and losses["catalog"] > losses["batch"]


SHIPPED = Path(__file__).resolve().parents[2] / "adapters" / "ml-100k-minilm-lora"


@pytest.mark.skipif(not (SHIPPED / "manifest.json").is_file(), reason="the shipped adapter is not in this checkout")
def test_shipped_adapter_verifies_and_loads():
    m = read_manifest(SHIPPED)
    assert m["base_model"] == "minilm" and m["dataset"]["name"] == "ml-100k"
    assert m["peft"]["trainable_params"] == 73_728
    tuned = TextEncoder.load("minilm", SHIPPED)
    base = TextEncoder.load("minilm")
    texts = ["title: Heat (1995); genres: Action, Crime, Thriller; year: 1995"]
    a, b = tuned.encode(texts), base.encode(texts)
    assert a.shape == (1, 384) and not torch.allclose(a, b, atol=1e-4)


def test_training_builds_the_user_vector_and_cuts_sentences_as_the_scorer_does(tiny_model, shop_a):
    """next_item's user side (the memory path) equals the `text:` scorer's zero-shot user vector over the same
    whole history, and its item table equals the scorer's catalogue embeddings at the same max_length."""
    from llmrec.encoders.text_user import recency_mean
    from llmrec.scorers.text_sim import TextScorerConfig

    ds, split = shop_a
    cfg = _cfg(tiny_model)
    assert (cfg.max_length, cfg.decay, cfg.history_len) == (TextScorerConfig().max_length, TextScorerConfig().decay, 0)
    enc = TextEncoder.load(tiny_model, max_length=cfg.max_length)
    stream = contrastive.build_objectives(enc, ds, split, cfg)[0]
    # every drawn history is the user's whole training sequence before the target
    ex = stream.draw(np.random.default_rng(0))
    starts = np.repeat(stream.starts, stream.k)
    for row, (hist, target) in enumerate(zip(ex["history"], ex["target"])):
        items = hist[hist > 0].tolist()
        s = int(starts[row])
        assert split.items[s : s + len(items)].tolist() == items and split.items[s + len(items)] == target
    batch = stream.epoch_batches(np.random.default_rng(0), 1)[0]
    stream.before_step(0)
    seen = {}
    real_info_nce = contrastive.info_nce

    def spy(user, t, tau, same):
        seen["user"] = user.detach()
        return real_info_nce(user, t, tau, same)

    contrastive.info_nce = spy
    try:
        with torch.no_grad():
            stream.loss(batch)
    finally:
        contrastive.info_nce = real_info_nce
    catalog = enc.encode_catalog(ds.items, cache=False)  # (N+1, H): what the scorer encodes
    assert torch.allclose(stream.memory, catalog, atol=1e-5)
    want = recency_mean(catalog, torch.from_numpy(batch["history"]), cfg.decay)  # the scorer's user vector
    assert torch.allclose(seen["user"], want, atol=1e-5)
