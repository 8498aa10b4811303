"""`llmrec serve` against a running server with a real HTTP client: the endpoints, every bad request a 4xx JSON
error naming its field (never a 500 with a traceback), the API key, and micro-batching (N concurrent requests,
fewer scorer calls than N, the same answers as one by one)."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time

import httpx
import pytest
from serve_helpers import free_socket, running_server

from llmrec.pipelines import Recommender, RecommenderConfig
from llmrec.serving.app import ServeConfig, create_app


def make(fixtures, spec: str = "itemknn", **serve) -> tuple[Recommender, object]:
    rec = Recommender.load(RecommenderConfig(dataset="ml-100k", scorer=spec, max_k=5), str(fixtures))
    return rec, create_app(rec, ServeConfig(**serve))


class Slow:
    """A scorer that takes at least `delay` seconds a call, so concurrent requests overlap a scoring call."""

    def __init__(self, inner, delay: float = 0.05) -> None:
        self.inner, self.delay, self.name = inner, delay, inner.name

    def score(self, batch):
        time.sleep(self.delay)
        return self.inner.score(batch)


def test_endpoints_answer_what_the_library_answers(fixtures, tmp_cache, hybrid_yaml):
    rec, app = make(fixtures, f"hybrid:{hybrid_yaml}")
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        health = http.get("/health").json()
        assert health["status"] == "ok" and health["dataset"] == "ml-100k" and health["items"] == 10
        assert health["components"] == ["pop", "itemknn"] and health["max_k"] == 5
        r = http.get("/users/2/recommendations", params={"k": 3})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        assert r.json() == rec.recommend(rec.query_user("2", 3)).to_dict()
        assert set(r.json()["items"][0]) == {"item_id", "title", "score", "components"}
        r = http.post("/recommendations", json={"history": [1, "3", 8], "k": 4})
        assert r.status_code == 200 and r.json() == rec.recommend(rec.query_history([1, 3, 8], 4)).to_dict()
        assert r.json()["user"] is None
        # k defaults to 10, or to max_k when that is lower (5 here)
        assert http.get("/users/2/recommendations").json() == rec.recommend(rec.query_user(2, 5)).to_dict()
        # curl -d sends a form content-type: the body is read as JSON all the same
        r = http.post("/recommendations", content=b'{"history": [1]}',
                      headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        assert http.get("/health").json()["queries"] >= 4


BAD = [
    ("GET", "/users/999/recommendations", None, 404, "user", "unknown user '999'"),
    ("GET", "/users/1/recommendations?k=0", None, 422, "k", "k must be from 1 to 5, got 0"),
    ("GET", "/users/1/recommendations?k=6", None, 422, "k", "got 6"),
    ("GET", "/users/1/recommendations?k=ten", None, 422, "k", "k must be a whole number from 1 to 5, got 'ten'"),
    ("POST", "/recommendations", {"history": [1, 77, "zz"]}, 422, "history", "unknown item ids in the history: 77, zz"),
    ("POST", "/recommendations", {"history": []}, 422, "history", "the history is empty"),
    ("POST", "/recommendations", {"history": [1], "k": 99}, 422, "k", "k must be from 1 to 5"),
    ("POST", "/recommendations", {"history": [1], "user": 3}, 422, "user", "unknown field 'user'"),
    ("POST", "/recommendations", {"k": 3}, 422, "history", "history: required"),
    ("POST", "/recommendations", {"history": [[1]]}, 422, "history", "an item id should be a number or a string"),
    ("POST", "/recommendations", b'{"history": [1', 422, "body", "not valid JSON"),
    ("POST", "/recommendations", [1, 2], 422, "body", "object"),
    ("POST", "/recommendations", {"history": [1] * 40_000}, 413, "body", "over 65536 bytes"),
    ("GET", "/no/such/route", None, 404, None, "Not Found"),
    ("DELETE", "/recommendations", None, 405, None, "Method Not Allowed"),
]


def test_bad_requests_get_a_4xx_json_error_naming_the_field(fixtures, tmp_cache):
    _, app = make(fixtures, max_body_bytes=64 * 1024)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        for method, path, body, status, field, text in BAD:
            kw = {"content": body} if isinstance(body, bytes) else {"json": body} if body is not None else {}
            r = http.request(method, path, **kw)
            assert r.status_code == status, (path, body, r.text)
            doc = r.json()
            assert doc["field"] == field and text in doc["error"], (path, doc)
            assert "Traceback" not in r.text
        # a chunked body (no Content-Length) over the limit is cut off too
        r = http.post("/recommendations", content=iter([b'{"history": [', b"1," * 40_000, b"1]}"]))
        assert r.status_code == 413 and r.json()["field"] == "body"
        assert http.get("/health").status_code == 200  # the server is still up


def test_the_page_over_plain_http(fixtures, tmp_cache):
    """The page's statuses and error box (the browser test, test_page.py, checks what it shows)."""
    _, app = make(fixtures)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        r = http.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and 'id="query"' in r.text
        r = http.get("/", params={"user": "1", "k": "2"})
        assert r.status_code == 200 and r.text.count('<tr class="rec"') == 2
        for params, status, field in [({"user": "999"}, 404, "user"), ({"user": "1", "history": "2"}, 422, "user"),
                                      ({"history": "1 77"}, 422, "history"), ({"user": "1", "k": "0"}, 422, "k")]:
            r = http.get("/", params=params)
            assert r.status_code == status and f'id="error" data-field="{field}"' in r.text, params
            assert 'id="query"' in r.text  # the form stays, to correct the query


def test_a_failing_scorer_is_a_json_500_without_a_traceback(fixtures, tmp_cache):
    rec, app = make(fixtures)

    class Broken:
        name = "broken"

        def score(self, batch):
            raise RuntimeError("boom")

    rec.scorer = Broken()
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        r = http.get("/users/1/recommendations")
        assert r.status_code == 500 and "internal error (RuntimeError" in r.json()["error"]
        assert "Traceback" not in r.text and "boom" not in r.text


def test_the_api_key_guards_every_route_but_health(fixtures, tmp_cache):
    _, app = make(fixtures, api_key="s3cret")
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = http.get("/users/1/recommendations", headers=headers)
            assert r.status_code == 401 and r.json()["field"] == "authorization"
            assert r.headers["www-authenticate"].startswith("Bearer")
        ok = {"Authorization": "Bearer s3cret"}
        assert http.get("/users/1/recommendations", headers=ok).status_code == 200
        assert http.post("/recommendations", json={"history": [1]}, headers=ok).status_code == 200
        page = http.get("/")
        assert page.status_code == 401 and page.headers["www-authenticate"].startswith("Basic")  # browsers ask
        basic = base64.b64encode(b"anyone:s3cret").decode()
        assert http.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200


@pytest.mark.parametrize("name", ["itemknn", "run"])
def test_concurrent_requests_share_scorer_calls_and_answer_as_one_by_one(name, fixtures, tmp_cache, request):
    spec = name if name == "itemknn" else f"run:{request.getfixturevalue('sasrec_run')}"
    rec, app = make(fixtures, spec, batch_window_ms=20, max_batch=16)
    rec.scorer = Slow(rec.scorer)
    users = [str(u) for u in rec.user_ids[1:]]
    histories = [[1], [2, 3], [4, 5, 6, 7], [10, 9, 8, 7, 6], [3, 1]]
    requests = [("GET", f"/users/{u}/recommendations?k={1 + i % 5}", None) for i, u in enumerate(users * 3)]
    requests += [("POST", "/recommendations", {"history": h, "k": 5}) for h in histories * 2]

    async def send_all(url: str) -> list[dict]:
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=64)) as http:
            rs = await asyncio.gather(*(http.request(m, p, json=b) for m, p, b in requests))
        assert all(r.status_code == 200 for r in rs), [r.text for r in rs if r.status_code != 200]
        return [r.json() for r in rs]

    with running_server(app) as url:
        concurrent = asyncio.run(send_all(url))
        calls = rec.calls
        with httpx.Client(base_url=url, timeout=30) as http:
            one_by_one = [http.request(m, p, json=b).json() for m, p, b in requests]
        stats = httpx.get(f"{url}/health").json()["batching"]
    n = len(requests)
    assert calls < n, f"{n} concurrent requests took {calls} scorer calls"
    assert rec.calls == calls + n  # one call each when they come one at a time
    assert stats["largest_batch"] > 1
    for a, b in zip(concurrent, one_by_one):
        assert a["user"] == b["user"] and [i["item_id"] for i in a["items"]] == [i["item_id"] for i in b["items"]]
        assert [i["score"] for i in a["items"]] == pytest.approx([i["score"] for i in b["items"]], abs=1e-5)


# --- the command itself --------------------------------------------------------------------------------------

def test_llmrec_serve_starts_answers_and_stops(fixtures, tmp_cache):
    """The real command in a subprocess on a free port: loads once, answers, stops on SIGTERM."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "LLMREC_CACHE_DIR": str(tmp_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "llmrec", "serve", "--dataset", "ml-100k", "--data-dir",
                             str(fixtures), "--scorer", "itemknn", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "llmrec serve did not come up"
            time.sleep(0.2)
        r = httpx.get(f"http://127.0.0.1:{port}/users/1/recommendations", params={"k": 2})
        assert r.status_code == 200 and len(r.json()["items"]) == 2
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "serving itemknn on ml-100k at http://127.0.0.1:" in err and "warning" not in err


def test_serve_warns_off_loopback_and_needs_fastapi(fixtures, tmp_cache, monkeypatch, capsys):
    from llmrec.cli import main

    seen = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.update(kw))
    base = ["serve", "--dataset", "ml-100k", "--data-dir", str(fixtures), "--scorer", "pop"]
    assert main(base + ["--host", "0.0.0.0", "--port", "9"]) == 0
    err = capsys.readouterr().err
    assert seen["host"] == "0.0.0.0" and seen["port"] == 9
    assert "llmrec: warning: serving on 0.0.0.0 without an API key" in err
    monkeypatch.setenv("LLMREC_API_KEY", "k")
    assert main(base + ["--host", "0.0.0.0"]) == 0
    assert "requests must carry the API key" in capsys.readouterr().err
    assert main(base) == 0 and seen["host"] == "127.0.0.1" and "warning" not in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the serve extra were not installed
    monkeypatch.delitem(sys.modules, "llmrec.serving.app", raising=False)
    assert main(base) == 2
    assert "pip install 'llmrec[serve]'" in capsys.readouterr().err
