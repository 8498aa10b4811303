"""Every objective × every compatible model: finite loss, gradients reach the encoder, deterministic under a seed,
and equal to a naive (loop) reference of its formula on a tiny batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llmrec.errors import ConfigError
from llmrec.models import MODELS
from llmrec.objectives import OBJECTIVES, ObjectiveContext, augment, build_objective
from llmrec.objectives.adaptssr import adaptssr_loss
from llmrec.objectives.base import info_nce, sequence_input
from llmrec.objectives.masked_item import cloze_mask
from llmrec.objectives.next_item import trim_pair

from .conftest import tiny_batch, tiny_model


def compatible(obj: str, model: str) -> bool:
    req = OBJECTIVES.get(obj).requires
    bidir = MODELS.get(model).cls.bidirectional
    return req == "any" or (req == "bidirectional") == bidir


# llm-ids is an LLM body, not a tiny random model: tests/training/test_llm_ids.py trains it with next_item
COMBOS = [(o, m) for o in OBJECTIVES.names() for m in MODELS.names() if m != "llm-ids" and compatible(o, m)]


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
    kw = dict(crop_ratio=0.6, mask_ratio=0.3, reorder_ratio=0.6, substitute_ratio=0.1, insert_ratio=0.4,
              mask_token=model.mask_token, correlated=obj.correlated, short_ops=("insert", "substitute", "mask"),
              short_len=4)
    v1 = augment.random_augment(seq, augment.OPS, g, **kw)
    v2 = augment.random_augment(seq, augment.OPS, g, **kw)
    z1 = torch.stack([model.encode(v[None])[0] for v in v1])
    z2 = torch.stack([model.encode(v[None])[0] for v in v2])
    same = batch.users[:, None] == batch.users[None, :]
    assert got == pytest.approx(naive_nt_xent(z1, z2, 1.0, "dot", same), rel=1e-4)


def test_coserec_schedule_memory_warm_up_then_the_better_of_two(split):
    from llmrec.objectives.coserec import better_of_two, memory_correlation, model_correlation

    model = tiny_model("sasrec")
    obj = build_objective("coserec", model, {"switch_epoch": 2}, ObjectiveContext(split=split, epochs=4))
    memory = memory_correlation(split, 1)
    for epoch in range(4):
        obj.on_epoch_start(epoch)
        if epoch < 2:
            assert torch.equal(obj.correlated, memory.ids) and obj.source == "memory"
        else:
            with torch.no_grad():
                model.item_emb.weight.mul_(-1.5)  # the model changes between epochs: the table must follow
            obj.on_epoch_start(epoch)
            want = better_of_two(memory, model_correlation(model.item_embeddings(), 1))
            assert torch.equal(obj.correlated, want) and obj.source == "hybrid"


def test_coserec_short_rows_may_be_masked_but_never_cropped():
    seq = torch.tensor([[0, 0, 0, 0, 3, 4, 5, 6]] * 64)  # length 4 = short_len: insert / substitute / mask
    table = torch.zeros(14, 1, dtype=torch.long)
    table[1:13, 0] = torch.arange(2, 14).clamp(max=12)
    out = augment.random_augment(seq, augment.OPS, torch.Generator().manual_seed(0), mask_token=13,
                                 correlated=table, short_ops=("insert", "substitute", "mask"), short_len=4,
                                 mask_ratio=0.5)
    lengths = (out != 0).sum(1)
    assert (lengths >= 4).all()  # never cropped
    assert ((out == 13).sum(1) == 2).any()  # some rows masked (⌊0.5·4⌋ = 2 items)
    assert (lengths == 5).any()  # some rows got an insertion (max(⌊0.4·4⌋, 1) = 1 item)


def test_same_target_index_draws_other_users_prefixes_uniformly(split):
    from llmrec.objectives.duorec import SameTargetIndex

    index = SameTargetIndex(split)
    users = np.arange(1, split.n_users + 1)
    starts, ends = split.history_bounds(users, "train")
    owner_of = {p: u for u, s, e in zip(users, starts, ends) for p in range(s, e)}
    eligible = {}  # (target, user) -> positions of OTHER users' training items equal to target, with context
    for t in range(1, split.n_items + 1):
        for u in users:
            eligible[t, u] = {p for p, o in owner_of.items() if split.items[p] == t and o != u and p > starts[o - 1]}
    target = torch.arange(1, split.n_items + 1).repeat_interleave(len(users))
    user = torch.from_numpy(users).repeat(split.n_items)
    counts: dict[tuple[int, int], dict[int, int]] = {}
    for seed in range(60):
        got = index.sample(target, user, torch.Generator().manual_seed(seed), rounds=50).tolist()
        for t, u, p in zip(target.tolist(), user.tolist(), got):
            if not eligible[t, u]:
                assert p == -1
            else:
                assert p in eligible[t, u], (t, u, p)
                counts.setdefault((t, u), {}).setdefault(p, 0)
                counts[t, u][p] += 1
    for key, c in counts.items():  # every eligible position is drawn (60 draws, ≤ 6 eligible)
        if len(eligible[key]) <= 6:
            assert set(c) == eligible[key], key
    prefix = index.prefixes(torch.tensor([int(ends[0]) - 1]), torch.tensor([1]), 6)[0]
    want = split.items[max(starts[0], ends[0] - 1 - 6) : ends[0] - 1].tolist()
    assert [int(x) for x in prefix if x] == want


def test_duorec_equals_naive(split):
    from llmrec.objectives.duorec import SameTargetIndex

    model = tiny_model("sasrec")
    batch = tiny_batch(split, seed=2)
    out = build("duorec", model, split)(batch)
    ok = (batch.seq[:, -1] > 0) & (batch.seq[:, :-1] != 0).any(1)  # a next item and something before it
    target, seq, users = batch.seq[ok, -1], batch.seq[ok, :-1][:, -6:], batch.users[ok]
    where = SameTargetIndex(split).sample(target, users, torch.Generator().manual_seed(2))
    z1, z2 = [], []
    for i in range(len(target)):
        z1.append(model.encode(seq[i][None])[0])
        if where[i] >= 0:
            p = int(where[i])
            owner = int(np.searchsorted(split.indptr, p, side="right") - 1)
            assert split.items[p] == target[i] and owner != users[i]
            other = split.items[max(split.indptr[owner], p - 6) : p]  # the other user's prefix before p
            z2.append(model.encode(torch.from_numpy(other)[None])[0])
        else:
            z2.append(model.encode(seq[i][None])[0])
    same = (target[:, None] == target[None, :]) | (users[:, None] == users[None, :])
    assert out.loss.item() == pytest.approx(naive_nt_xent(torch.stack(z1), torch.stack(z2), 1.0, "dot", same),
                                            rel=1e-4)
    assert out.logs["positive_share"] == pytest.approx(float((where >= 0).float().mean()))
    assert out.logs["positive_share"] > 0.5  # the whole training set, not the batch, holds the positives


def test_next_item_bce_negatives_avoid_the_users_training_items_and_equal_naive(split):
    from llmrec.objectives import next_item as ni

    seen = ni.seen_keys(split)
    users = torch.arange(1, split.n_users + 1).repeat(200)
    neg = ni.sample_unseen(users, split.n_items, seen, torch.Generator().manual_seed(0))
    train = {u: set(h.tolist()) for u, h in zip(range(1, split.n_users + 1),
                                                split.history_lists(np.arange(1, split.n_users + 1), "train"))}
    for u, i in zip(users.tolist(), neg.tolist()):
        assert 1 <= i <= split.n_items and i not in train[u]
    for u in range(1, split.n_users + 1):  # every unseen item is drawn
        drawn = set(neg[users == u].tolist())
        assert drawn == set(range(1, split.n_items + 1)) - train[u]

    model = tiny_model("sasrec")
    batch = tiny_batch(split, seed=4)
    captured = {}
    real = ni.sample_unseen

    def spy(owners, n_items, seen_, rng):
        captured["neg"] = real(owners, n_items, seen_, rng)
        captured["owners"] = owners
        return captured["neg"]

    ni.sample_unseen = spy
    try:
        got = build("next_item", model, split, loss="bce")(batch).loss.item()
    finally:
        ni.sample_unseen = real
    total, n, negs = 0.0, 0, iter(captured["neg"].tolist())
    E = model.item_embeddings()
    for r in range(batch.seq.shape[0]):
        row, fresh = batch.seq[r], batch.fresh[r]
        h = model(row[None, :-1])[0]  # (T, H)
        for t in range(1, row.shape[0]):
            if row[t] > 0 and row[t - 1] > 0 and fresh[t]:
                neg_i = next(negs)
                assert neg_i not in train[int(batch.users[r])]
                pos_l, neg_l = float(h[t - 1] @ E[row[t] - 1]), float(h[t - 1] @ E[neg_i - 1])
                total += -math.log(1 / (1 + math.exp(-pos_l))) - math.log(1 - 1 / (1 + math.exp(-neg_l)))
                n += 1
    assert got == pytest.approx(total / n, rel=1e-4)


@pytest.mark.parametrize("model_name", ["sasrec", "bert4rec"])
def test_ccl_fills_only_masked_positions_from_its_own_generator_and_equals_naive(model_name, split):
    model = tiny_model(model_name)
    torch.manual_seed(0)
    obj = build("ccl", model, split, generator_epochs=2)
    batch = tiny_batch(split, seed=1)
    got = obj(batch).loss.item()
    seq = sequence_input(batch, 6)
    g = torch.Generator().manual_seed(1)
    v1, v2 = obj.fill(seq, batch.users, 0.1, g), obj.fill(seq, batch.users, 0.1, g)
    n = augment.lengths(seq)
    for v in (v1, v2):
        assert ((v != seq).sum(1) <= torch.clamp((0.1 * n).ceil().long(), min=1)).all()
        assert ((v == 0) == (seq == 0)).all()
        assert (v <= model.n_items).all()
    z1 = torch.stack([model.encode(v[None])[0] for v in v1])
    z2 = torch.stack([model.encode(v[None])[0] for v in v2])
    same = batch.users[:, None] == batch.users[None, :]
    assert got == pytest.approx(naive_nt_xent(z1, z2, 1.0, "dot", same), rel=1e-4)
    # the fill never reads the encoder being pre-trained: changing it leaves the views as they were
    before = obj.fill(seq, batch.users, 0.5, torch.Generator().manual_seed(5))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    assert torch.equal(before, obj.fill(seq, batch.users, 0.5, torch.Generator().manual_seed(5)))
    # and the generator is not part of the objective's parameters (never optimised, never checkpointed)
    assert not any(k.startswith("generator") for k in obj.state_dict())
    assert all(not p.requires_grad for p in obj.generator.parameters())


def test_ccl_generator_learns_the_masked_item_and_reads_user_attributes():
    """Users 1-6 watch 1,2,3,4 (women) or 1,2,5,4 (men): the third item is only knowable from the attribute."""
    import pandas as pd

    from llmrec.objectives.ccl import MaskFillGenerator, attribute_codes, train_generator
    from llmrec.types import Split

    seqs = [[1, 2, 3, 4] if u % 2 else [1, 2, 5, 4] for u in range(1, 25)]
    seqs = [s + [6, 7] for s in seqs]  # valid + test items, outside the training part
    indptr = np.concatenate([[0, 0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    items = np.concatenate(seqs).astype(np.int64)
    split = Split(24, 7, indptr, items, np.arange(len(items), dtype=np.int64))
    users = pd.DataFrame({"gender": ["F" if u % 2 else "M" for u in range(1, 25)],
                          "zip": [str(10000 + u) for u in range(1, 25)]}, index=pd.RangeIndex(1, 25))
    attrs = attribute_codes(users, 24)
    assert attrs is not None and attrs[1] == [2]  # gender kept, zip (one value per user) skipped
    torch.manual_seed(0)
    gen = MaskFillGenerator(7, 6, 16, 1, attrs)
    losses = train_generator(gen, split, epochs=150, lr=1e-2, batch_size=24, mask_prob=0.3,
                             rng=torch.Generator().manual_seed(0))
    assert losses[-1] < losses[0] / 3
    seq = torch.tensor([[0, 0, 1, 2, 8, 4], [0, 0, 1, 2, 8, 4]])  # 8 = [MASK]
    at = seq == 8
    probs = torch.softmax(gen.logits(seq, torch.tensor([1, 2]), at), dim=-1)  # user 1: F, user 2: M
    assert probs[0, 2] > 0.8 and probs[1, 4] > 0.8


def test_ccl_curriculum_goes_from_easy_to_hard(split):
    obj = build_objective("ccl", tiny_model("sasrec"), {"ratio_start": 0.1, "ratio_end": 0.5},
                          ObjectiveContext(split=split, epochs=5))
    ratios = []
    for e in range(5):
        obj.on_epoch_start(e)
        ratios.append(obj.epoch_ratio)
    assert ratios[0] == pytest.approx(0.1) and ratios[-1] == pytest.approx(0.5)
    assert ratios == sorted(ratios)


def naive_adaptssr(a1, p1, a2, p2, users):
    """METHODS.md's AdaptSSR, one anchor at a time: λ a batch scalar, loss symmetric over the two anchors."""
    a1, p1, a2, p2 = (t.detach() for t in (a1, p1, a2, p2))

    def cos(x, y):
        return float(F.cosine_similarity(x, y, dim=0))

    B = a1.shape[0]

    def one(a, p, sa, sp):
        lam = 1 - sum(cos(a[i], sa[i]) + cos(a[i], sp[i]) for i in range(B)) / (2 * B)
        total = 0.0
        for i in range(B):
            semi = [cos(a[i], sa[i]), cos(a[i], sp[i])]
            negs = [cos(a[i], v[j]) for j in range(B) if users[j] != users[i] for v in (a1, p1, a2, p2)]
            s_neg = max(negs) if negs else -1.0
            d = lam * (cos(a[i], p[i]) - max(semi)) + (1 - lam) * (min(semi) - s_neg)
            total += -math.log(1 / (1 + math.exp(-d)))
        return total / B

    return (one(a1, p1, a2, p2) + one(a2, p2, a1, p1)) / 2


def test_adaptssr_loss_equals_naive():
    torch.manual_seed(0)
    views = [torch.randn(6, 5) for _ in range(4)]
    users = torch.tensor([1, 2, 3, 3, 4, 5])
    got, lam = adaptssr_loss(*views, users=users)
    assert got.item() == pytest.approx(naive_adaptssr(*views, users), rel=1e-5)
    assert lam.shape == (2,) and ((lam >= 0) & (lam <= 2)).all()
    # λ carries no gradient: the loss's gradient equals the one with λ fixed to its value
    vs = [v.clone().requires_grad_(True) for v in views]
    adaptssr_loss(*vs, users=users)[0].backward()
    assert all(v.grad is not None and torch.isfinite(v.grad).all() for v in vs)


def test_adaptssr_objective_equals_its_loss(split):
    model = tiny_model("sasrec")
    batch = tiny_batch(split, seed=6)
    got = build("adaptssr", model, split)(batch).loss.item()
    seq = sequence_input(batch, 6)
    g = torch.Generator().manual_seed(6)
    kw = dict(crop_ratio=0.4, mask_ratio=0.6, reorder_ratio=0.6, mask_token=model.mask_token)
    s1 = augment.random_augment(seq, ("crop", "reorder", "mask"), g, **kw)
    s2 = augment.random_augment(seq, ("crop", "reorder", "mask"), g, **kw)
    assert not torch.equal(s1, s2)  # two explicit augmentations per user
    z1 = torch.stack([model.encode(s[None])[0] for s in s1])
    z2 = torch.stack([model.encode(s[None])[0] for s in s2])
    assert got == pytest.approx(naive_adaptssr(z1, z1, z2, z2, batch.users), rel=1e-4)
