"""The LLM layer under bad conditions: a corrupted or unwritable response cache, a server without /tokenize,
a rerun that resumes from the cache, and `serve-llm` on an interface other machines can reach."""

from __future__ import annotations

import os
import sqlite3

import pytest
from llm_fakes import Reply, chat_reply

from llmrec.cli import main
from llmrec.errors import CacheError
from llmrec.llm import serve
from llmrec.llm.base import Completion, Usage
from llmrec.llm.cache import CachedBackend, ResponseCache

PROMPTS = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]


class EchoBackend:
    name = cache_id = "fake:echo"
    context_length = 100

    def __init__(self) -> None:
        self.usage = Usage()
        self.asked = 0

    def generate(self, prompts, params=None, on_result=None):
        out = []
        for i, p in enumerate(prompts):
            self.asked += 1
            c = Completion(text=p[0]["content"][::-1], prompt_tokens=1, completion_tokens=1, latency_s=0.0)
            out.append(c)
            if on_result:
                on_result(i, c)
        return out

    def count_tokens(self, p):
        return 1

    def close(self):
        pass


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---- the response cache ----------------------------------------------------------------------------------
def test_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not SQLite " * 20)
    with pytest.raises(CacheError, match=rf"{path}: the LLM response cache is corrupted .*delete it"):
        ResponseCache(path)


def test_a_damaged_database(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    for i in range(300):
        cache.put(f"k{i}", "generate", "b", "{}", {"text": "x" * 200})
    cache.close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(path.read_bytes())
    data[4096 : 4096 * 6] = b"\xff" * (4096 * 5)  # overwrite pages after the header
    path.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="corrupted .*delete it"):
        c = ResponseCache(path)
        c.get_many([f"k{i}" for i in range(300)])


def test_an_unwritable_cache_fails_before_any_call(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError, match=rf"{blocker / 'c.sqlite'}: cannot create the LLM response cache's folder"):
        ResponseCache(blocker / "c.sqlite")
    folder = tmp_path / "a_folder.sqlite"
    folder.mkdir()
    with pytest.raises(CacheError, match=rf"{folder}: cannot open the LLM response cache .*options.cache"):
        ResponseCache(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_cache_fails_when_opened(tmp_path):
    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()  # a WAL file: BEGIN IMMEDIATE alone would pass on it read-only
    path.chmod(0o444)
    with pytest.raises(CacheError, match=rf"{path}: cannot open the LLM response cache \(attempt to write a readonly"):
        ResponseCache(path)


def test_a_corrupted_row_is_a_cache_error(tmp_path):
    path = tmp_path / "c.sqlite"
    b = CachedBackend(EchoBackend(), ResponseCache(path))
    b.generate(PROMPTS)
    b.close()
    con = sqlite3.connect(path)
    con.execute("UPDATE responses SET response = '{broken'")
    con.commit()
    con.close()
    b = CachedBackend(EchoBackend(), ResponseCache(path))
    with pytest.raises(CacheError, match="corrupted"):
        b.generate(PROMPTS)
    con = sqlite3.connect(path)
    con.execute("""UPDATE responses SET response = '{"nope": 1}'""")
    con.commit()
    con.close()
    with pytest.raises(CacheError, match="corrupted"):
        b.generate(PROMPTS)


def test_resuming_from_the_cache_says_so_once(tmp_path, capsys):
    path = tmp_path / "c.sqlite"
    b = CachedBackend(EchoBackend(), ResponseCache(path))
    b.generate(PROMPTS[:2])
    b.generate(PROMPTS[:2])  # hits on answers this run stored itself: nothing is resumed
    b.close()
    assert capsys.readouterr().err == ""
    inner = EchoBackend()
    b = CachedBackend(inner, ResponseCache(path))  # a rerun (a new process would see the same file)
    b.generate(PROMPTS[:3])
    b.generate(PROMPTS)
    b.close()
    err = capsys.readouterr().err
    assert inner.asked == 2
    assert err == (f"llmrec: resuming: answers already in the LLM response cache {path} are reused, only the "
                   f"missing ones are asked\n")


# ---- through the CLI --------------------------------------------------------------------------------------
def _evaluate(fixtures, url, scorer, *extra):
    return ["evaluate", "--dataset", "ml-100k", "--data-dir", fixtures, "--scorer", scorer, "--protocol",
            "sampled:3", "--llm", f"openai:{url}#fake-model", *extra]


def test_no_tokenize_warning_comes_once_after_the_error_line(capsys, fixtures, tmp_cache, fake_server):
    """A plain OpenAI-compatible server: counting tokens for the prompt budget falls back to an estimate
    (a warning, raised first), then label scoring needs /tokenize (the error). The error line comes first."""
    fake_server.routes["/v1/chat/completions"] = lambda req: Reply(body=chat_reply("1"))
    code, _, err = run(capsys, *_evaluate(fixtures, fake_server.url, "llm:verbalizer", "--set", "options.cache=false"))
    lines = err.splitlines()
    assert code == 2 and "Traceback" not in err
    assert lines[0].startswith("llmrec: error: ") and "no /tokenize endpoint" in lines[0]
    assert lines[1:] == [next(ln for ln in lines if ln.startswith("llmrec: warning: "))]
    assert "token counts are estimates" in lines[1]


def test_corrupted_cache_through_the_cli(capsys, fixtures, tmp_cache, fake_server, tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 100)
    code, _, err = run(capsys, *_evaluate(fixtures, fake_server.url, "llm:listwise", "--set", f"options.cache={bad}"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"llmrec: error: {bad}: the LLM response cache is corrupted") and "delete it" in err


# ---- serve-llm beyond loopback ----------------------------------------------------------------------------
@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.0.2", True),
                                       ("0.0.0.0", False), ("", False), ("10.0.0.5", False), ("myhost", False)])
def test_loopback(host, loop):
    assert serve.is_loopback(host) is loop
    assert (serve.exposure_warning(host, None) is None) is loop


def test_api_key_is_passed_to_vllm_and_used_for_health():
    cfg = serve.ServerConfig(host="0.0.0.0", port=1234, api_key="s3cret")
    cmd = serve.server_command(cfg, "/py", "/models/m", 1234)
    assert cmd[cmd.index("--api-key") + 1] == "s3cret" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert "--api-key" not in serve.server_command(serve.ServerConfig(port=1), "/py", "/m", 1)
    assert "requests must carry the API key" in serve.exposure_warning("0.0.0.0", "s3cret")


def test_health_check_sends_the_key(monkeypatch):
    seen = []

    class Ok:
        status = 200

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(serve.urllib.request, "urlopen", lambda req, timeout: seen.append(req) or Ok())
    assert serve._ok("http://h/v1/models", "k1")
    assert seen[0].get_header("Authorization") == "Bearer k1"


def test_serve_llm_warns_on_a_public_host(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("LLMREC_VLLM_PYTHON", raising=False)
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.setattr(serve, "CHECKOUT", tmp_path)
    monkeypatch.setattr(serve.importlib.util, "find_spec", lambda name: None)
    assert main(["serve-llm", "--host", "0.0.0.0", "--python", "/no/such/python"]) == 2
    err = capsys.readouterr().err
    assert "llmrec: warning: serving on 0.0.0.0 without an API key" in err and "--api-key" in err
    assert main(["serve-llm", "--python", "/no/such/python"]) == 2
    assert "warning" not in capsys.readouterr().err
