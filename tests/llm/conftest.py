"""LLM-layer fixtures: the embedded hf backend (loaded once per session), a vLLM server backend when
LLMREC_VLLM_URL is set (skipped otherwise; a failure when LLMREC_REQUIRE_VLLM=1, as in CI), the fixture user,
and a tiny scriptable OpenAI-compatible HTTP server for failure paths."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from llm_fakes import FIXTURE_USER, MODELS, FakeServer, Reply


@pytest.fixture(scope="session")
def fixture_user() -> dict[str, Any]:
    return dict(FIXTURE_USER)


@pytest.fixture(scope="session")
def hf_backend():
    from llmrec.llm.hf_local import HFBackend

    # one thread: on a shared 2-core machine it is several times faster per decode step than two
    b = HFBackend("smollm2-135m", batch_size=8, num_threads=1)
    yield b
    b.close()


def vllm_url() -> str:
    """LLMREC_VLLM_URL (`http://host:port/v1[#model]`), or skip — or fail when LLMREC_REQUIRE_VLLM=1."""
    url = os.environ.get("LLMREC_VLLM_URL", "").strip()
    if not url:
        if os.environ.get("LLMREC_REQUIRE_VLLM") == "1":
            pytest.fail("LLMREC_REQUIRE_VLLM=1 but LLMREC_VLLM_URL is not set: the vLLM server did not start")
        pytest.skip("vLLM integration: set LLMREC_VLLM_URL to a server started with `llmrec serve-llm`")
    return url.removeprefix("openai:")


@pytest.fixture(scope="session")
def vllm_backend():
    from llmrec.errors import BackendError
    from llmrec.llm import make_backend

    b = make_backend(f"openai:{vllm_url()}", timeout_s=120, max_retries=2)
    try:
        _ = b.model  # reach the server now: an unreachable server fails here, it is not skipped
    except BackendError as e:
        pytest.fail(f"LLMREC_VLLM_URL is set but the server does not answer: {e}")
    yield b
    b.close()


@pytest.fixture(params=["hf", "vllm"])
def backend(request):
    """Each contract test runs on the embedded backend and on the vLLM server."""
    return request.getfixturevalue(f"{request.param}_backend")


@pytest.fixture()
def fake_server() -> Iterator[FakeServer]:
    state = FakeServer(url="", routes={"/v1/models": lambda req: Reply(body=MODELS)})

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def _serve(self) -> None:
            n = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                req = json.loads(raw) if raw else {}
            except ValueError:
                req = {}
            path = self.path.split("?")[0]
            with state.lock:
                state.hits[path] = state.hits.get(path, 0) + 1
                state.requests.append((path, req))
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                route = state.routes.get(path)
                reply = (
                    route(req)
                    if route
                    else Reply(404, {"error": {"message": f"no route {path}", "code": 404}})
                )
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = body.encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                with state.lock:
                    state.in_flight -= 1

        do_GET = _serve
        do_POST = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield state
    httpd.shutdown()
    httpd.server_close()
