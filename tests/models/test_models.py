"""ID models: shapes, causality / bidirectionality, left-padding invariance, tied embeddings, config checks."""

from __future__ import annotations

import pytest
import torch

from llmrec.errors import ConfigError, UnknownNameError
from llmrec.models import MODELS, SequenceEncoder, build_model, model_config

N = 20


@pytest.fixture
def tiny(tiny_llama):
    """tiny(name) → a seeded model of width 16 (for llm-ids: LoRA on a random 2-layer Llama of width 16)."""

    def build(name: str, **kw):
        torch.manual_seed(0)
        if name == "llm-ids":
            return build_model(name, N, {"llm": tiny_llama(0, 16), "max_len": 8, "r": 4, **kw}).eval()
        return build_model(name, N, {"max_len": 8, "hidden": 16, "n_heads": 2, "dropout": 0.0, **kw}).eval()

    return build


@pytest.fixture
def seq():
    return torch.tensor([[0, 0, 0, 3, 5, 7, 2, 9], [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 0, 4]])


@pytest.mark.parametrize("name", MODELS.names())
def test_contract_and_shapes(name, seq, tiny):
    m = tiny(name)
    assert isinstance(m, SequenceEncoder)
    h = m(seq)
    assert h.shape == (3, 8, 16)
    u = m.encode(seq)
    assert u.shape == (3, 16)
    assert m.item_logits(u).shape == (3, N)
    assert m.item_embeddings().shape == (N, 16)
    assert m.mask_token == N + 1
    assert torch.isfinite(h).all()


@pytest.mark.parametrize("name", MODELS.names())
def test_item_embeddings_are_tied(name, tiny):
    m = tiny(name)
    assert m.item_embeddings().data_ptr() == m.item_emb.weight[1:].data_ptr()
    assert (m.item_emb.weight[0] == 0).all()  # padding row


@pytest.mark.parametrize("name", MODELS.names())
def test_left_padding_invariance(name, seq, tiny):
    """Extra all-padding columns on the left change nothing (positions are counted from the right)."""
    m = tiny(name)
    short = seq[:, -5:][[0]]  # one row with items in all 5 columns
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), short], dim=1)
    torch.testing.assert_close(m(short), m(padded)[:, -5:], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(m.encode(short), m.encode(padded), atol=1e-4, rtol=1e-4)


def test_sasrec_is_causal(seq, tiny):
    m = tiny("sasrec")
    a = seq[[1]].clone()
    b = a.clone()
    b[0, 5:] = torch.tensor([11, 12, 13])
    torch.testing.assert_close(m(a)[:, :5], m(b)[:, :5])  # positions ≤ 4 never see later items
    assert not torch.allclose(m(a)[:, 6], m(b)[:, 6])


def test_bert4rec_is_bidirectional_and_encode_appends_mask(seq, tiny):
    m = tiny("bert4rec")
    a = seq[[1]].clone()
    b = a.clone()
    b[0, 7] = 15
    assert not torch.allclose(m(a)[:, 0], m(b)[:, 0])  # the first position sees the last item
    hist = seq[[0]]
    manual = m(torch.cat([hist[:, 1:], torch.tensor([[m.mask_token]])], dim=1))[:, -1]
    torch.testing.assert_close(m.encode(hist), manual)


@pytest.mark.parametrize("name", MODELS.names())
def test_history_longer_than_max_len_keeps_the_most_recent(name, tiny):
    m = tiny(name)
    long = torch.arange(1, 13)[None]  # 12 items, max_len 8
    torch.testing.assert_close(m.encode(long), m.encode(long[:, -8:]))


def test_config_is_validated():
    with pytest.raises(ConfigError, match="unknown key 'hiden'"):
        model_config("sasrec", N, {"hiden": 3})
    with pytest.raises(ConfigError, match="divisible"):
        model_config("sasrec", N, {"hidden": 10, "n_heads": 3})
    with pytest.raises(UnknownNameError, match="bert4rec, llm-ids, sasrec"):
        build_model("gru4rec", N)


@pytest.mark.parametrize("name", MODELS.names())
def test_seeded_init_is_deterministic(name, tiny):
    a, b = tiny(name), tiny(name)
    for (k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(v, w), k
