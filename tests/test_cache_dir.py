"""One cache root for everything llmrec caches: `$LLMREC_CACHE_DIR`, else `$XDG_CACHE_HOME/llmrec`, else
`~/.cache/llmrec` — data downloads, candidate sets, converted models and the LLM response cache alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmrec.io import cache_dir


def _roots(tiny) -> dict[str, Path]:
    """Where each consumer puts its files under the current environment."""
    from llmrec.data.candidates import _cache_path
    from llmrec.data.sources import data_roots
    from llmrec.llm import make_backend
    from llmrec.llm.models import models_dir

    ds, split = tiny
    backend = make_backend("openai:http://127.0.0.1:9/v1#m", cache=True)  # no connection until first use
    try:
        llm = backend.cache.path  # type: ignore[attr-defined]
    finally:
        backend.close()
    return {
        "data": data_roots()[-1][0],
        "candidates": _cache_path(ds, split, "sampled:3", "test", 0),
        "models": models_dir(),
        "llm responses": llm,
    }


@pytest.mark.parametrize("env", ["llmrec", "xdg", "home"])
def test_one_cache_root_for_everything(tiny, tmp_path, monkeypatch, env):
    monkeypatch.delenv("LLMREC_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("LLMREC_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if env == "llmrec":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        monkeypatch.setenv("LLMREC_CACHE_DIR", str(tmp_path / "mine"))
        expected = tmp_path / "mine"
    elif env == "xdg":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        expected = tmp_path / "xdg" / "llmrec"
    else:
        expected = tmp_path / "home" / ".cache" / "llmrec"
    assert cache_dir() == expected
    for what, path in _roots(tiny).items():
        assert expected in path.parents, (what, path)


def test_every_cache_dir_is_the_same_function():
    from llmrec.data import sources
    from llmrec.llm import models

    assert sources.cache_dir is cache_dir and models.cache_dir is cache_dir
