"""TextEncoder: normalised embeddings, equality with raw sentence-transformers, and the on-disk cache keyed by
model, adapter and texts."""

from __future__ import annotations

import pytest
import torch

from llmrec.encoders.lora import LoraTuneConfig, attach_lora, save_adapter
from llmrec.encoders.text_encoder import TextEncoder, resolve_model
from llmrec.errors import LLMRecError
from llmrec.types import ItemCatalog

TEXTS = ["title: classic pan; category: cookware", "title: deluxe wok", "a longer text about a garden hose reel"]


def test_encode_is_normalised_and_matches_raw_sentence_transformers(tiny_model):
    from sentence_transformers import SentenceTransformer

    enc = TextEncoder.load(tiny_model)
    emb = enc.encode(TEXTS)
    assert emb.shape == (3, 32) and emb.dtype == torch.float32
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)
    raw = SentenceTransformer(tiny_model, device="cpu")
    ref = raw.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=True)
    assert torch.allclose(emb, ref, atol=1e-6)
    # the differentiable training path computes the same vectors in eval mode
    enc.st.eval()
    with torch.no_grad():
        assert torch.allclose(enc.embed(TEXTS), emb, atol=1e-5)


def test_encode_catalog_has_a_zero_padding_row(tiny_model, shop_a):
    ds, _ = shop_a
    emb = TextEncoder.load(tiny_model).encode_catalog(ds.items)
    assert emb.shape == (ds.n_items + 1, 32)
    assert torch.all(emb[0] == 0)


def test_cache_hit_and_invalidation_on_text_and_adapter(tiny_model, shop_a, tmp_path):
    ds, _ = shop_a
    enc = TextEncoder.load(tiny_model)
    first = enc.encode_catalog(ds.items, cache=tmp_path / "c")
    again = enc.encode_catalog(ds.items, cache=tmp_path / "c")
    assert (enc.stats.cache_misses, enc.stats.cache_hits) == (1, 1)
    assert torch.equal(first, again)
    # a changed item text is a new key
    key = enc.stats.last_key
    renamed = ItemCatalog(ds.items.frame.copy(), ds.items.text_fields)
    renamed.frame.loc[1, "title"] = "a renamed pan"
    changed = enc.encode_catalog(renamed, cache=tmp_path / "c")
    assert enc.stats.cache_misses == 2 and enc.stats.last_key != key
    assert not torch.equal(changed[1], first[1]) and torch.equal(changed[2:], first[2:])
    # an adapter is a new key, and two different adapters are two keys
    keys = set()
    for seed in (1, 2):
        e2 = TextEncoder.load(tiny_model)
        peft_model = attach_lora(e2, LoraTuneConfig(model=tiny_model, seed=seed))
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.normal_(std=0.5)
        save_adapter(e2, tmp_path / f"ad{seed}", {"format": "llmrec-text-adapter/1"})
        e3 = TextEncoder.load(tiny_model, tmp_path / f"ad{seed}")
        tuned = e3.encode_catalog(ds.items, cache=tmp_path / "c")
        assert e3.stats.cache_misses == 1 and e3.stats.last_key not in keys | {key}
        keys.add(e3.stats.last_key)
        assert not torch.allclose(tuned, first)


def test_unknown_encoder_lists_the_aliases():
    with pytest.raises(LLMRecError, match="minilm"):
        resolve_model("no-such-encoder")


def test_packaged_minilm_loads_offline():
    enc = TextEncoder.load("minilm")
    assert enc.dim == 384
    emb = enc.encode(["title: Heat (1995); genres: Action, Crime, Thriller"])
    assert emb.shape == (1, 384)
