"""LLM tuning: examples never show a held-out item and hold their template out, the target sits at a uniform
random letter, training lowers the answer loss and resumes exactly, the adapter round-trips through its manifest
into the hf: backend (and changes what it scores), and bad adapters are refused."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from llmrec.errors import CheckpointError, ConfigError
from llmrec.tune_llm import FAMILIES, ExampleSpec, LLMTuneConfig, build_examples, tune_llm
from llmrec.tune_llm.examples import held_out_items
from llmrec.tune_llm.train import Tokens, batches_for_epoch, collate


def spec(**kw) -> ExampleSpec:
    base = dict(tasks=["direct", "sequential", "rating", "yesno"],
                per_user={"direct": 3, "sequential": 3, "rating": 3, "yesno": 3}, holdout={},
                history_len=3, candidates=4, negatives="uniform", next_k=2, item_kind="movie", action="watched")
    return ExampleSpec(**{**base, **kw})


def text_of(ex) -> str:
    return "\n".join(m["content"] for m in ex.messages) + "\n" + ex.answer


@pytest.mark.parametrize("negatives", ["uniform", "retriever", "mixed"])
def test_no_held_out_item_in_any_training_example(tiny, negatives):
    from llmrec.parsing import display_title
    from llmrec.scorers import ScorerContext, build_scorer

    ds, split = tiny
    retriever = build_scorer("pop", ScorerContext())
    retriever.fit(ds, split)
    ex = build_examples(ds, split, spec(negatives=negatives), retriever, np.random.default_rng(0))
    assert {e.family for e in ex} == {"direct", "sequential", "rating", "yesno"}
    users = np.arange(1, split.n_users + 1)
    names = [display_title(ds.items.title(i)) for i in range(1, ds.n_items + 1)]
    unique = {t for t in names if names.count(t) == 1}  # the fixture has two films called "Heat (1995)"
    held = {int(u): [display_title(ds.items.title(int(i))) for i in row if i] for u, row in
            zip(users, held_out_items(split, users))}
    for e in ex:
        for title in held[e.user]:
            if title in unique:
                assert title not in text_of(e), (e.family, e.template, title)
        assert e.template != FAMILIES[e.family].holdout
    # the validation examples: the held-out template never, the validation item as the answer's subject
    val = build_examples(ds, split, spec(negatives=negatives), retriever, np.random.default_rng(1), "valid")
    assert val and all(v.template == FAMILIES[v.family].templates[0] for v in val)
    for v in val:
        test_title = held[v.user][1]
        if test_title in unique:
            assert test_title not in text_of(v)  # the test item appears in no example at all
        valid_title = held[v.user][0]
        if v.family == "sequential":
            assert v.answer == valid_title
        if v.family == "direct":
            cands = v.messages[-1]["content"]
            assert f"{v.answer}. {valid_title}" in cands


def test_direct_target_letter_is_uniform_and_negatives_come_from_the_retriever(shared_data):
    from llmrec.data import leave_one_out, load_dataset
    from llmrec.scorers import ScorerContext, build_scorer

    ds = load_dataset("ml-100k", shared_data)
    split = leave_one_out(ds)
    knn = build_scorer("itemknn", ScorerContext())
    knn.fit(ds, split)
    s = spec(tasks=["direct"], per_user={"direct": 2}, candidates=20, negatives="retriever", history_len=5)
    ex = build_examples(ds, split, s, knn, np.random.default_rng(0))
    cols = Counter(e.target_col for e in ex)
    assert len(cols) == 20
    expected = len(ex) / 20
    chi2 = sum((c - expected) ** 2 / expected for c in cols.values())
    assert chi2 < 43.8  # chi-square, 19 degrees of freedom, p = 0.001
    # the retriever's candidates for the history: item-kNN's top items, never in the history, never held out
    e = ex[0]
    assert e.family == "direct" and e.n_candidates == 20


def test_rating_is_skipped_without_ratings(fixtures):
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset(fixtures / "sequences.txt")
    split = leave_one_out(ds)
    s = spec(tasks=["sequential", "rating"])
    ex = build_examples(ds, split, s, None, np.random.default_rng(0))
    assert {e.family for e in ex} == {"sequential"}
    assert any("no ratings" in n for n in s.extra["notes"])


def test_sequential_answers_are_the_next_titles_in_order(tiny):
    from llmrec.parsing import display_title

    ds, split = tiny
    ex = build_examples(ds, split, spec(tasks=["sequential"], next_k=2), None, np.random.default_rng(0))
    for e in ex:
        end = int(split.history_bounds(np.array([e.user]), "train")[1][0])
        want = [display_title(ds.items.title(int(i))) for i in split.items[e.pos : min(e.pos + 2, end)]]
        assert e.answer.split("\n") == want


def test_bad_specs_are_config_errors(tiny):
    ds, split = tiny
    with pytest.raises(ConfigError, match="unknown"):
        build_examples(ds, split, spec(tasks=["explain"]), None, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="not a direct template"):
        build_examples(ds, split, spec(holdout={"direct": "rank/pointwise"}), None, np.random.default_rng(0))
    with pytest.raises(ValueError, match="tasks"):
        LLMTuneConfig(tasks=[])


def test_batches_cover_every_example_once_and_group_lengths():
    lengths = np.random.default_rng(0).integers(10, 500, size=103)
    batches = batches_for_epoch(lengths, 8, 4, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(103))
    def spread(bs):
        return np.mean([lengths[b].max() - lengths[b].min() for b in bs])

    plain = batches_for_epoch(lengths, 8, 1, np.random.default_rng(1))  # bucket 1: random batches
    assert spread(batches) < 0.5 * spread(plain)  # sorted inside groups: far less padding


def test_collate_masks_the_prompt_and_padding():
    from llmrec.tune_llm.train import Encoded

    rows = [Encoded([5, 6, 7, 8], 2, "x"), Encoded([9, 10, 11], 1, "x")]
    b = collate(rows, pad_id=0)
    assert b["labels"].tolist() == [[-100, -100, 7, 8], [-100, 10, 11, -100]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]


# ---- training on a tiny random-init Llama with SmolLM2's tokenizer ------------------------------------------
@pytest.fixture(scope="module")
def tiny_llm(tiny_llama) -> str:
    return tiny_llama(0)


def _cfg(model: str, **kw) -> LLMTuneConfig:
    base = dict(llm=model, tasks=["direct", "sequential", "yesno", "rating"], negatives="uniform", candidates=4,
                history_len=3, per_user={"direct": 2, "sequential": 2, "rating": 1, "yesno": 2}, valid_users=5,
                epochs=2, batch_size=4, lr=5e-3, save_every=2, threads=1, r=4, alpha=8)
    return LLMTuneConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tuned(tiny_llm, tiny, tmp_path_factory):
    ds, split = tiny
    root = tmp_path_factory.mktemp("tuned")
    m = tune_llm(ds, split, _cfg(tiny_llm), root / "adapter", root / "work", progress=False)
    return ds, split, root, m


def test_tuning_lowers_the_answer_loss_and_writes_a_checked_adapter(tuned):
    ds, split, root, m = tuned
    log = m["training"]["log"]
    assert [r["epoch"] for r in log] == [0, 1, 2]  # epoch 0: the base model on the validation examples
    assert log[2]["valid"]["mean_loss"] < log[1]["valid"]["mean_loss"] < log[0]["valid"]["mean_loss"]
    assert sorted(p.name for p in (root / "adapter").iterdir()) == [
        "adapter_config.json", "adapter_model.safetensors", "manifest.json"]
    assert m["dataset"] == {"name": ds.name, "split_hash": split.hash}
    assert m["templates"]["direct"]["held_out"] == "p5/direct/choose-letter"
    assert "p5/direct/choose-letter" not in m["templates"]["direct"]["trained"]
    assert m["training"]["examples_per_s"] > 0 and m["peft"]["trainable_params"] > 0
    assert set(m["metrics"]["valid"]["loss"]) == {"direct", "sequential", "yesno", "rating"}


def test_resumed_tuning_equals_uninterrupted(tiny_llm, tuned, tmp_path):
    from safetensors.torch import load_file

    ds, split, root, _ = tuned
    cfg = _cfg(tiny_llm)
    out = tune_llm(ds, split, cfg, tmp_path / "a", tmp_path / "w", progress=False, stop_after_steps=3)
    assert out == {"interrupted": True, "epoch": 0, "step_in_epoch": 3}
    tune_llm(ds, split, cfg, tmp_path / "a", tmp_path / "w", progress=False)
    got = load_file(tmp_path / "a" / "adapter_model.safetensors")
    want = load_file(root / "adapter" / "adapter_model.safetensors")
    assert got.keys() == want.keys()
    for k in got:
        assert torch.equal(got[k], want[k]), k
    with pytest.raises(ConfigError, match="other settings"):
        tune_llm(ds, split, _cfg(tiny_llm, lr=1e-3), tmp_path / "a", tmp_path / "w", progress=False)


def test_the_adapter_loads_into_hf_and_changes_its_scores(tiny_llm, tuned):
    from llmrec.llm.hf_local import HFBackend

    _, _, root, m = tuned
    base = HFBackend(tiny_llm, num_threads=1)
    tuned_b = HFBackend(f"{tiny_llm}+{root / 'adapter'}", num_threads=1)
    assert tuned_b.cache_id != base.cache_id and m["files"]["adapter_model.safetensors"][:16] in tuned_b.cache_id
    prompt = [{"role": "user", "content": "Pick A, B, C or D."}]
    a = base.score_labels([prompt], ["A", "B", "C", "D"])[0].logprobs
    b = tuned_b.score_labels([prompt], ["A", "B", "C", "D"])[0].logprobs
    assert max(abs(x - y) for x, y in zip(a, b)) > 1e-3


def test_corrupted_or_foreign_adapters_are_refused(tiny_llm, tiny_llama, tuned, tmp_path):
    from llmrec.llm.hf_local import HFBackend

    _, _, root, _ = tuned
    bad = tmp_path / "bad"
    shutil.copytree(root / "adapter", bad)
    data = bytearray((bad / "adapter_model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (bad / "adapter_model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 differs"):
        HFBackend(f"{tiny_llm}+{bad}")
    other = tiny_llama(1)
    with pytest.raises(CheckpointError, match="tuned on base model"):
        HFBackend(f"{other}+{root / 'adapter'}")
    gone = tmp_path / "gone"
    shutil.copytree(root / "adapter", gone)
    (gone / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="no manifest.json"):
        HFBackend(f"{tiny_llm}+{gone}")


def test_the_trained_tokens_are_the_ones_the_rankers_read(tiny_llm):
    """A letter answer is one token, the same id score_labels reads; a title answer is the loglik continuation."""
    from transformers import AutoTokenizer

    from llmrec.llm.hf_local import HFBackend

    tok = AutoTokenizer.from_pretrained(tiny_llm)
    t = Tokens(tok)
    hf = HFBackend(tiny_llm, num_threads=1)
    msgs = [{"role": "user", "content": "Which one?"}]
    assert t.prompt_ids(msgs) == hf.prompt_ids(msgs)
    assert t.answer_ids("C") == hf.label_ids(["C"])
    assert t.answer_ids("Heat (1995)") == hf.text_ids("Heat (1995)")


def test_cli_tunes_and_reports(tiny_llm, fixtures, tmp_path, capsys):
    from llmrec.cli import main

    FIXTURES = fixtures
    cfg = tmp_path / "tune.yaml"
    cfg.write_text(json.dumps({"negatives": "uniform", "candidates": 4, "history_len": 3, "valid_users": 3,
                               "batch_size": 4, "threads": 1, "r": 4, "alpha": 8}))
    code = main(["tune-llm", "--dataset", "ml-100k", "--data-dir", str(FIXTURES), "--llm", f"hf:{tiny_llm}",
                 "--tasks", "direct,sequential", "--out", str(tmp_path / "ad"), "--work", str(tmp_path / "w"),
                 "--config", str(cfg), "--max-examples", "8"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "adapter written to" in out.out and "validation answer loss" in out.out
    assert "--llm hf:" in out.err
    code = main(["tune-llm", "--dataset", "ml-100k", "--data-dir", str(FIXTURES), "--llm", tiny_llm,
                 "--tasks", "direct,summaries", "--out", str(tmp_path / "ad2")])
    assert code == 2 and "llmrec: error:" in capsys.readouterr().err
