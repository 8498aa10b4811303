"""The training loop: runs end to end, checkpoints round-trip, resume == uninterrupted, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from llmrec.errors import CheckpointError, ConfigError
from llmrec.models import MODELS
from llmrec.models import checkpoint as ckpt
from llmrec.objectives import OBJECTIVES
from llmrec.scorers.id_model import IDModelScorer
from llmrec.training import ObjectiveSpec, StageConfig, TrainConfig, train
from llmrec.training.loop import Position, supervised_objective
from llmrec.types import ScoreBatch

from .conftest import TINY_MODEL


def config(**kw) -> TrainConfig:
    stages = kw.pop("stages", None) or [
        StageConfig([ObjectiveSpec("next_item")], epochs=4, batch_size=8, patience=3),
    ]
    kw.setdefault("threads", 1)  # tiny models: a second thread only waits on a busy machine
    return TrainConfig(dataset="synth", stages=stages, model_options=dict(TINY_MODEL), bucket=2, **kw)


def run(cfg, out, synth, **kw):
    ds, split = synth
    return train(cfg, out, dataset=ds, split=split, progress=False, **kw)


def test_train_writes_a_complete_run(tmp_path, synth):
    res = run(config(), tmp_path / "r", synth)
    files = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"config.yaml", "model.safetensors", "model.json", "state.safetensors", "state.json", "metrics.jsonl",
            "result.json"} <= files
    out = json.loads((tmp_path / "r" / "result.json").read_text())
    assert 0.0 <= out["best_valid_NDCG@10"] <= 1.0 and 0.0 <= out["test"]["NDCG@10"] <= 1.0
    assert out["stages"][0]["epochs_run"] >= 1 and out["stages"][0]["seconds_to_best"] > 0
    assert res.test == out["test"]
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == out["stages"][0]["epochs_run"] and "NDCG@10" in json.loads(lines[0])


def test_learns_the_synthetic_structure(tmp_path, synth):
    cfg = config(stages=[StageConfig([ObjectiveSpec("next_item")], epochs=30, batch_size=16, lr=5e-3, patience=30)])
    res = run(cfg, tmp_path / "r", synth)
    assert res.test["HR@10"] > 0.8  # random would be 10/16 of the unseen items at best


def test_checkpoint_round_trip(tmp_path, synth):
    run(config(), tmp_path / "r", synth)
    model, info = ckpt.load_model(tmp_path / "r")
    assert info["dataset"] == "synth" and info["n_items"] == synth[1].n_items
    again, _ = ckpt.load_model(tmp_path / "r")
    for (k, v), (_, w) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(v, w), k
    ckpt.save_model(tmp_path / "copy", model, {"dataset": "synth", "split_hash": info["split_hash"]})
    copy, _ = ckpt.load_model(tmp_path / "copy")
    hist = torch.tensor([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]])
    torch.testing.assert_close(copy.encode(hist), model.encode(hist), rtol=0, atol=0)
    scorer = IDModelScorer.from_run(tmp_path / "r")
    scorer.fit(*synth)
    full = scorer.score(ScoreBatch(torch.tensor([1, 2]), hist, None))
    assert full.shape == (2, synth[1].n_items + 1)
    cand = torch.tensor([[3, 5, 0], [1, 2, 9]])
    sub = scorer.score(ScoreBatch(torch.tensor([1, 2]), hist, cand))
    assert torch.equal(sub[0, :2], full[0, [3, 5]]) and sub[0, 2] < -1e30


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path, synth):
    stages = [
        StageConfig([ObjectiveSpec("cl4srec")], epochs=2, batch_size=8),
        StageConfig([ObjectiveSpec("next_item"), ObjectiveSpec("duorec", 0.1)], epochs=4, batch_size=8, patience=4),
    ]
    full = run(config(stages=stages), tmp_path / "full", synth)
    cut = tmp_path / "cut"
    for stop in (1, 2, 2):  # interrupted inside stage 1, across the stage boundary, inside stage 2
        partial = run(config(stages=stages), cut, synth, stop_after_epochs=stop)
        assert partial.test == {}
    resumed = run(config(stages=stages), cut, synth)
    assert resumed.test == full.test
    a = ckpt.load_tensors(tmp_path / "full" / ckpt.MODEL_FILE)
    b = ckpt.load_tensors(cut / ckpt.MODEL_FILE)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_refuses_a_changed_config(tmp_path, synth):
    run(config(), tmp_path / "r", synth, stop_after_epochs=1)
    with pytest.raises(ConfigError, match="another config .*seed"):
        run(config(seed=1), tmp_path / "r", synth)


@pytest.mark.parametrize("damage", ["flip", "truncate", "json"])
def test_corrupted_checkpoint_is_a_checkpoint_error(tmp_path, synth, damage):
    run(config(stages=[StageConfig([ObjectiveSpec("next_item")], epochs=1, batch_size=16)]), tmp_path / "r", synth)
    path = tmp_path / "r" / ckpt.MODEL_FILE
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-5] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:
        (tmp_path / "r" / ckpt.MODEL_INFO).write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupted"):
        ckpt.load_model(tmp_path / "r")
    with pytest.raises(CheckpointError):
        IDModelScorer.from_run(tmp_path / "r")


def test_unreadable_safetensors_without_a_hash_is_a_checkpoint_error(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(CheckpointError, match="corrupted or unreadable"):
        ckpt.load_tensors(tmp_path / "x.safetensors")


def test_checkpoint_from_another_data_set_is_refused(tmp_path, synth, tiny):
    run(config(stages=[StageConfig([ObjectiveSpec("next_item")], epochs=1, batch_size=16)]), tmp_path / "r", synth)
    other_ds, other_split = tiny  # the ml-100k fixture: 10 items, not 16
    scorer = IDModelScorer.from_run(tmp_path / "r")
    with pytest.raises(CheckpointError, match="16 items.* has 10 items"):
        scorer.fit(other_ds, other_split)
    cfg = TrainConfig(dataset="ml-100k", stages=[StageConfig([ObjectiveSpec("next_item")], epochs=1)],
                      init_from=str(tmp_path / "r"))
    with pytest.raises(CheckpointError, match="16 items"):
        train(cfg, tmp_path / "ft", dataset=other_ds, split=other_split, progress=False)


def test_bidirectional_objective_with_sasrec_is_a_config_error(tmp_path, synth):
    cfg = config(stages=[StageConfig([ObjectiveSpec("masked_item")], epochs=1)])
    with pytest.raises(ConfigError, match="'masked_item' needs a bidirectional encoder"):
        run(cfg, tmp_path / "r", synth)


def test_transfer_from_a_pretrained_run(tmp_path, synth):
    run(config(model="bert4rec", stages=[StageConfig([ObjectiveSpec("ptum")], epochs=1, batch_size=16)]),
        tmp_path / "pre", synth)
    pre = ckpt.load_tensors(tmp_path / "pre" / ckpt.MODEL_FILE)
    cfg = config(model="bert4rec", init_from=str(tmp_path / "pre"),
                 stages=[StageConfig([ObjectiveSpec("masked_item")], epochs=2, batch_size=16)])
    cfg.model_options = {}
    res = run(cfg, tmp_path / "ft", synth)
    info = ckpt.read_model_info(tmp_path / "ft")
    assert info["init_from"] == str(tmp_path / "pre") and info["options"]["hidden"] == 16
    assert res.test and not torch.equal(ckpt.load_tensors(tmp_path / "ft" / ckpt.MODEL_FILE)["item_emb.weight"],
                                        pre["item_emb.weight"])


def test_resume_state_keeps_its_format(tmp_path, synth):
    """state.json's "pos" is the `Position` dataclass as a dict, with the keys (and order) runs interrupted before
    it was a dataclass carry, so they still resume."""
    run(config(), tmp_path / "r", synth, stop_after_epochs=1)
    pos = json.loads((tmp_path / "r" / "state.json").read_text())["pos"]
    assert list(pos) == ["stage", "epoch", "best", "best_epoch", "bad", "step", "seconds", "stages"]
    assert Position.from_dict(pos).to_dict() == pos and pos["epoch"] == 1


@pytest.mark.parametrize("model", MODELS.names())
def test_every_model_has_a_supervised_objective_that_fits_it(model):
    name = supervised_objective(model)
    assert OBJECTIVES.get(name).supervised
    assert name == {"sasrec": "next_item", "bert4rec": "masked_item"}.get(model, name)
