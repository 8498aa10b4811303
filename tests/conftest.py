"""Shared test fixtures: tiny raw data in every supported format (tests/fixtures) and the real data sets in
../shared/data when present (every dev machine and CI run has them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = Path(os.environ.get("LLMREC_DATA_DIR", SHARED_DATA))
    if not (root / "ml-100k" / "u.data").is_file():
        pytest.skip("the real data sets (../shared/data) are not on this machine")
    return root


@pytest.fixture()
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """An empty llmrec cache folder for this test (candidate files, downloads)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LLMREC_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def tiny():
    """(dataset, split) of the tiny MovieLens-format fixture."""
    from llmrec.data import leave_one_out, load_dataset

    ds = load_dataset("ml-100k", FIXTURES)
    return ds, leave_one_out(ds)


def write_tiny_llama(path: Path, seed: int = 0, hidden: int = 32) -> str:
    """A random-init 2-layer Llama of width `hidden` with SmolLM2's tokenizer (and tied embeddings, as SmolLM2)
    saved in `path`: a real causal LM in a few KB, for tests that tune, load or serve one."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from llmrec.llm.models import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                      tie_word_embeddings=True)
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """make(seed=0, hidden=32) → the folder of `write_tiny_llama(seed, hidden)`, written once per session."""
    made: dict[tuple[int, int], str] = {}

    def make(seed: int = 0, hidden: int = 32) -> str:
        if (seed, hidden) not in made:
            made[(seed, hidden)] = write_tiny_llama(tmp_path_factory.mktemp(f"tiny-llama-{seed}-{hidden}"), seed,
                                                    hidden)
        return made[(seed, hidden)]

    return make
