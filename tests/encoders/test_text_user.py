"""Text user encoders: the recency mean equals its naive form; the trained model learns, is invariant to extra
left padding, and scores items it never saw in training."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from llmrec.encoders.text_user import MoEAdaptor, TextSeqConfig, recency_mean, train_text_seq


def test_recency_mean_equals_naive_loop():
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(12, 6, generator=g), dim=1)
    emb[0] = 0
    hist = torch.tensor([[0, 0, 3, 5, 3], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]])
    got = recency_mean(emb, hist, 0.5)
    for b in range(2):
        acc = torch.zeros(6)
        for t in range(5):
            if hist[b, t] > 0:
                acc += 0.5 ** (4 - t) * emb[hist[b, t]]
        assert torch.allclose(got[b], F.normalize(acc, dim=0), atol=1e-6)
    assert torch.all(got[2] == 0)  # empty history → zero vector


def test_moe_adaptor_is_a_mixture_of_whitened_experts():
    torch.manual_seed(0)
    m = MoEAdaptor(5, 3, experts=4, dropout=0.0)
    torch.nn.init.normal_(m.gate.weight)
    torch.nn.init.normal_(m.bias)
    x = torch.randn(7, 5)
    g = torch.softmax(x @ m.gate.weight.T, -1)  # (7, 4)
    naive = sum(g[:, k : k + 1] * ((x - m.bias[k]) @ m.weight[k]) for k in range(4))
    assert torch.allclose(m(x), naive, atol=1e-5)


def _text_emb(n_items: int, dim: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    e = F.normalize(torch.randn(n_items + 1, dim, generator=g), dim=1)
    e[0] = 0
    return e


def test_trained_text_user_encoder_learns_and_ignores_padding(shop_a):
    ds, split = shop_a
    emb = _text_emb(ds.n_items)
    cfg = TextSeqConfig(hidden=16, heads=2, layers=1, experts=2, epochs=15, batch_size=8, max_len=8, dropout=0.1)
    model, log = train_text_seq(emb, split, cfg, progress=False)
    assert log["loss"][-1] < log["loss"][0]
    assert not model.training
    hist = torch.from_numpy(split.history(np.arange(1, 6), "test", max_len=6))  # (5, 6)
    padded = torch.cat([torch.zeros(5, 2, dtype=torch.long), hist], dim=1)  # (5, 8)
    with torch.no_grad():
        assert torch.allclose(model.user(hist, emb), model.user(padded, emb), atol=1e-5)
        assert model.items(emb).shape == (ds.n_items + 1, 16)


def test_training_is_seeded(shop_a):
    ds, split = shop_a
    emb = _text_emb(ds.n_items)
    cfg = TextSeqConfig(hidden=16, heads=2, layers=1, experts=2, epochs=2, batch_size=8, max_len=8)
    a, _ = train_text_seq(emb, split, cfg, progress=False)
    b, _ = train_text_seq(emb, split, cfg, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
