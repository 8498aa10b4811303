"""Every objective × every compatible model: finite loss, gradients reach the encoder, deterministic under a seed,
and equal to a naive (loop) reference of its formula on a tiny batch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmrec.errors import ConfigError
from llmrec.models import MODELS
from llmrec.objectives import OBJECTIVES, ObjectiveContext, augment, build_objective
from llmrec.objectives.adaptssr import adaptssr_loss
from llmrec.objectives.base import info_nce, sequence_input
from llmrec.objectives.duorec import same_target_partner
from llmrec.objectives.masked_item import cloze_mask
from llmrec.objectives.next_item import trim_pair

from .conftest import tiny_batch, tiny_model


def compatible(obj: str, model: str) -> bool:
    req = OBJECTIVES.get(obj).requires
    bidir = MODELS.get(model).cls.bidirectional
    return req == "any" or (req == "bidirectional") == bidir


COMBOS = [(o, m) for o in OBJECTIVES.names() for m in MODELS.names() if compatible(o, m)]


def build(name, model, split, **options):
    obj = build_objective(name, model, options, ObjectiveContext(split=split, epochs=3))
    obj.on_epoch_start(0)
    return obj


def test_registry_lists_all_eight():
    assert OBJECTIVES.names() == sorted(
        ["next_item", "masked_item", "ptum", "cl4srec", "coserec", "duorec", "ccl", "adaptssr"]
    )
    for name in OBJECTIVES.names():
        cls = OBJECTIVES.get(name)
        assert cls.requires in ("any", "causal", "bidirectional")
        assert cls.__module__.endswith(name) and "L" in (__import__(cls.__module__, fromlist=["x"]).__doc__ or "")


@pytest.mark.parametrize("name,model_name", COMBOS)
def test_finite_loss_and_gradients_reach_the_encoder(name, model_name, split):
    model = tiny_model(model_name, dropout=0.1)
    obj = build(name, model, split)
    torch.manual_seed(1)
    out = obj(tiny_batch(split))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert all(math.isfinite(v) for v in out.logs.values())
    out.loss.backward()
    for pname in ("item_emb.weight", "blocks.0.qkv.weight", "blocks.1.ffn.0.weight"):
        g = dict(model.named_parameters())[pname].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, pname


@pytest.mark.parametrize("name,model_name", COMBOS)
def test_deterministic_under_a_seed(name, model_name, split):
    losses = []
    for _ in range(2):
        model = tiny_model(model_name, dropout=0.2, seed=3)
        obj = build(name, model, split)
        torch.manual_seed(7)  # dropout
        losses.append(obj(tiny_batch(split, seed=5)).loss.item())
    assert losses[0] == losses[1]
    model = tiny_model(model_name, dropout=0.2, seed=3)
    torch.manual_seed(7)
    other = build(name, model, split)(tiny_batch(split, seed=6)).loss.item()
    if name not in ("next_item", "duorec"):  # these draw nothing at random here (CE; no shared next items)
        assert other != losses[0]


@pytest.mark.parametrize(
    "name,model_name", [("masked_item", "sasrec"), ("ptum", "sasrec"), ("next_item", "bert4rec")]
)
def test_encoder_requirements_raise_config_error(name, model_name, split):
    with pytest.raises(ConfigError, match="needs a (bidirectional|causal) encoder"):
        build_objective(name, tiny_model(model_name), {}, ObjectiveContext(split=split))


def test_unknown_option_is_a_config_error(split):
    with pytest.raises(ConfigError, match="unknown key 'temprature'"):
        build_objective("cl4srec", tiny_model("sasrec"), {"temprature": 0.5})


# ------------------------------------------------------------------------------------------ naive references
def naive_nt_xent(a, b, tau, sim="dot", same=None):
    a, b = a.detach(), b.detach()
    B = a.shape[0]
    z = list(a) + list(b)

    def s(x, y):
        return float(x @ y) if sim == "dot" else float(F.cosine_similarity(x, y, dim=0))

    total = 0.0
    for i in range(2 * B):
        pos = i + B if i < B else i - B
        den = 0.0
        for k in range(2 * B):
            if k == i:
                continue
            if same is not None and i % B != k % B and bool(same[i % B, k % B]):
                continue
            den += math.exp(s(z[i], z[k]) / tau)
        total += -(s(z[i], z[pos]) / tau - math.log(den))
    return total / (2 * B)


@pytest.mark.parametrize("sim", ["dot", "cos"])
def test_info_nce_equals_naive(sim):
    torch.manual_seed(0)
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    same = torch.zeros(5, 5, dtype=torch.bool)
    same[0, 3] = same[3, 0] = True
    for blocked in (None, same):
        got = info_nce(a, b, 0.7, sim, same=blocked).item()
        assert got == pytest.approx(naive_nt_xent(a, b, 0.7, sim, blocked), rel=1e-5)


def test_next_item_equals_naive(split):
    model = tiny_model("sasrec")
    batch = tiny_batch(split)
    got = build("next_item", model, split)(batch).loss.item()
    total, n = 0.0, 0
    for r in range(batch.seq.shape[0]):
        row, fresh = batch.seq[r], batch.fresh[r]
        h = model(row[None, :-1])[0]  # (T, H)
        for t in range(1, row.shape[0]):
            if row[t] > 0 and row[t - 1] > 0 and fresh[t]:
                logp = torch.log_softmax(h[t - 1] @ model.item_embeddings().T, dim=-1)
                total -= logp[row[t] - 1].item()
                n += 1
    assert got == pytest.approx(total / n, rel=1e-4)


def test_next_item_bce_option(split):
    model = tiny_model("sasrec")
    out = build("next_item", model, split, loss="bce")(tiny_batch(split))
    assert torch.isfinite(out.loss) and out.loss.item() == pytest.approx(2 * math.log(2), rel=0.1)


def test_cloze_mask_equals_naive():
    seq = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 9]])
    got = cloze_mask(seq, 0.4, 0.3, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    u, last_u = torch.rand(seq.shape, generator=g), torch.rand(3, generator=g)
    for r in range(3):
        if last_u[r] < 0.3:
            want = [j == 5 for j in range(6)]
        else:
            want = [bool(seq[r, j] > 0 and u[r, j] < 0.4) for j in range(6)]
            if not any(want):
                want = [j == 5 for j in range(6)]
        assert got[r].tolist() == want


def test_masked_item_equals_naive(split):
    model = tiny_model("bert4rec")
    batch = tiny_batch(split, seed=4)
    got = build("masked_item", model, split)(batch).loss.item()
    seq, fresh = trim_pair(batch.seq[:, -6:], batch.fresh[:, -6:], keep_min=1)
    masked = cloze_mask(seq, 0.2, 0.1, torch.Generator().manual_seed(4))
    total, n = 0.0, 0
    for r in range(seq.shape[0]):
        inp = seq[r].clone()
        inp[masked[r]] = model.mask_token
        h = model(inp[None])[0]
        for t in range(seq.shape[1]):
            if masked[r, t] and fresh[r, t]:
                total -= (torch.log_softmax(model.item_logits(h[t]), -1)[seq[r, t] - 1]).item()
                n += 1
    assert got == pytest.approx(total / n, rel=1e-4)


def test_ptum_equals_naive(split):
    model = tiny_model("bert4rec")
    obj = build("ptum", model, split)
    batch = tiny_batch(split, seed=8)
    out = obj(batch)
    seq = sequence_input(batch, 6)
    masked = cloze_mask(seq, 0.15, 0.0, torch.Generator().manual_seed(8))
    mbp, n = 0.0, 0
    for r in range(seq.shape[0]):
        inp = seq[r].clone()
        inp[masked[r]] = model.mask_token
        u = obj.pool(model(inp[None]), (inp != 0)[None])[0]
        for t in range(seq.shape[1]):
            if masked[r, t]:
                mbp -= (torch.log_softmax(model.item_logits(obj.mbp_head(u)), -1)[seq[r, t] - 1]).item()
                n += 1
    assert out.logs["mbp"] == pytest.approx(mbp / n, rel=1e-4)
    nbp, n = 0.0, 0
    for r in range(batch.seq.shape[0]):
        row = batch.seq[r]
        prefix = row[:-2][-6:]
        if not (prefix != 0).any():
            continue
        u = obj.pool(model(prefix[None]), (prefix != 0)[None])[0]
        for k in range(2):
            if row[-2 + k] > 0:
                nbp -= (torch.log_softmax(model.item_logits(obj.nbp_heads[k](u)), -1)[row[-2 + k] - 1]).item()
                n += 1
    assert out.logs["nbp"] == pytest.approx(nbp / n, rel=1e-4)


@pytest.mark.parametrize("model_name", ["sasrec", "bert4rec"])
def test_cl4srec_equals_naive(model_name, split):
    model = tiny_model(model_name)
    obj = build("cl4srec", model, split)
    batch = tiny_batch(split, seed=3)
    got = obj(batch).loss.item()
    seq = sequence_input(batch, 6)
    g = torch.Generator().manual_seed(3)
    kw = dict(crop_ratio=0.6, mask_ratio=0.3, reorder_ratio=0.6, mask_token=model.mask_token)
    v1 = augment.random_augment(seq, ("crop", "mask", "reorder"), g, **kw)
    v2 = augment.random_augment(seq, ("crop", "mask", "reorder"), g, **kw)
    z1 = torch.stack([model.encode(v[None])[0] for v in v1])
    z2 = torch.stack([model.encode(v[None])[0] for v in v2])
    same = batch.users[:, None] == batch.users[None, :]
    assert got == pytest.approx(naive_nt_xent(z1, z2, 1.0, "dot", same), rel=1e-4)


def test_coserec_equals_naive(split):
    model = tiny_model("sasrec")
    obj = build("coserec", model, split, correlation="memory")
    batch = tiny_batch(split, seed=9)
    got = obj(batch).loss.item()
    seq = sequence_input(batch, 6)
    g = torch.Generator().manual_seed(9)
    kw = dict(crop_ratio=0.6, mask_ratio=0.3, reorder_ratio=0.6, substitute_ratio=0.3, insert_ratio=0.3,
              mask_token=model.mask_token, correlated=obj.correlated, short_ops=("substitute", "insert"), short_len=4)
    v1 = augment.random_augment(seq, augment.OPS, g, **kw)
    v2 = augment.random_augment(seq, augment.OPS, g, **kw)
    z1 = torch.stack([model.encode(v[None])[0] for v in v1])
    z2 = torch.stack([model.encode(v[None])[0] for v in v2])
    same = batch.users[:, None] == batch.users[None, :]
    assert got == pytest.approx(naive_nt_xent(z1, z2, 1.0, "dot", same), rel=1e-4)


def test_duorec_equals_naive(split):
    model = tiny_model("sasrec")
    batch = tiny_batch(split, seed=2)
    # make supervised positives exist: duplicate rows' next items
    batch.seq[1, -1] = batch.seq[0, -1]
    batch.seq[2, -1] = batch.seq[0, -1]
    got = build("duorec", model, split)(batch).loss.item()
    ok = (batch.seq[:, -1] > 0) & (batch.seq[:, :-1] != 0).any(1)  # a next item and something before it
    target, seq, users = batch.seq[ok, -1], batch.seq[ok, :-1][:, -6:], batch.users[ok]
    partner = same_target_partner(target, torch.Generator().manual_seed(2))
    for i in range(len(target)):
        assert target[partner[i]] == target[i]
        if (target == target[i]).sum() > 1:
            assert partner[i] != i
    z1 = torch.stack([model.encode(s[None])[0] for s in seq])
    z2 = z1[partner]
    same = (target[:, None] == target[None, :]) | (users[:, None] == users[None, :])
    assert got == pytest.approx(naive_nt_xent(z1, z2, 1.0, "dot", same), rel=1e-4)


@pytest.mark.parametrize("model_name", ["sasrec", "bert4rec"])
def test_ccl_fills_only_masked_positions_and_equals_naive(model_name, split):
    model = tiny_model(model_name)
    obj = build("ccl", model, split)
    batch = tiny_batch(split, seed=1)
    got = obj(batch).loss.item()
    seq = sequence_input(batch, 6)
    g = torch.Generator().manual_seed(1)
    v1, v2 = obj.fill(seq, 0.1, g), obj.fill(seq, 0.1, g)
    n = augment.lengths(seq)
    for v in (v1, v2):
        assert ((v != seq).sum(1) <= torch.clamp((0.1 * n).ceil().long(), min=1)).all()
        assert ((v == 0) == (seq == 0)).all()
        assert (v <= model.n_items).all()
    z1 = torch.stack([model.encode(v[None])[0] for v in v1])
    z2 = torch.stack([model.encode(v[None])[0] for v in v2])
    same = batch.users[:, None] == batch.users[None, :]
    assert got == pytest.approx(naive_nt_xent(z1, z2, 1.0, "dot", same), rel=1e-4)


def test_ccl_curriculum_goes_from_easy_to_hard(split):
    obj = build_objective("ccl", tiny_model("sasrec"), {"ratio_start": 0.1, "ratio_end": 0.5},
                          ObjectiveContext(split=split, epochs=5))
    ratios = []
    for e in range(5):
        obj.on_epoch_start(e)
        ratios.append(obj.epoch_ratio)
    assert ratios[0] == pytest.approx(0.1) and ratios[-1] == pytest.approx(0.5)
    assert ratios == sorted(ratios)


def naive_adaptssr(u, up, a, ap, users):
    u, up, a, ap = (t.detach() for t in (u, up, a, ap))
    def cos(x, y):
        return float(F.cosine_similarity(x, y, dim=0))

    B = u.shape[0]
    total = 0.0
    for i in range(B):
        lam = 1 - 0.25 * sum(max(cos(s, t), 0.0) for s in (u[i], up[i]) for t in (a[i], ap[i]))
        s_pos = cos(u[i], up[i])
        s_aug = [cos(u[i], a[i]), cos(u[i], ap[i])]
        negs = [cos(u[i], v[j]) for j in range(B) if users[j] != users[i] for v in (u, up, a, ap)]
        s_neg = max(negs) if negs else -1.0
        m = lam * (s_pos - max(s_aug)) + (1 - lam) * (min(s_aug) - s_neg)
        total += -math.log(1 / (1 + math.exp(-m)))
    return total / B


def test_adaptssr_loss_equals_naive():
    torch.manual_seed(0)
    views = [torch.randn(6, 5) for _ in range(4)]
    users = torch.tensor([1, 2, 3, 3, 4, 5])
    got, lam = adaptssr_loss(*views, users=users)
    assert got.item() == pytest.approx(naive_adaptssr(*views, users), rel=1e-5)
    assert ((lam >= 0) & (lam <= 1)).all()


def test_adaptssr_objective_equals_its_loss(split):
    model = tiny_model("sasrec")
    batch = tiny_batch(split, seed=6)
    got = build("adaptssr", model, split)(batch).loss.item()
    seq = sequence_input(batch, 6)
    aug = augment.random_augment(seq, ("crop", "mask", "reorder"), torch.Generator().manual_seed(6),
                                 crop_ratio=0.6, mask_ratio=0.3, reorder_ratio=0.6, mask_token=model.mask_token)
    u = torch.stack([model.encode(s[None])[0] for s in seq])
    a = torch.stack([model.encode(s[None])[0] for s in aug])
    assert got == pytest.approx(naive_adaptssr(u, u, a, a, batch.users), rel=1e-4)
