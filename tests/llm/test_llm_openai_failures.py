"""Failure paths of the `openai:` backend against a tiny local HTTP server: server down, timeout, HTTP 500 and
429 (retried with backoff, then a clear error), malformed answers, unknown model, context overflow, ignored
structured choice, a server without vLLM extras, and the concurrency bound."""

from __future__ import annotations

import time

import pytest
from llm_fakes import MODELS, Reply, chat_reply

from llmrec.errors import BackendError
from llmrec.llm import GenerationParams, make_backend
from llmrec.llm.openai_compat import normalize_base_url, vllm_request_kwargs
from llmrec.llm.serve import free_port

CHAT = [{"role": "user", "content": "hi"}]
FAST = dict(timeout_s=2.0, max_retries=2, backoff_s=0.01, max_backoff_s=0.05)


def backend(url, **kw):
    return make_backend(f"openai:{url}#fake-model", **{**FAST, **kw})


def test_server_down_fails_fast_and_clearly():
    url = f"http://127.0.0.1:{free_port()}/v1"
    b = backend(url)
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match=r"failed after 3 attempts: cannot connect"):
        b.generate([CHAT])
    assert time.perf_counter() - t0 < 10
    b.close()


def test_timeout_is_retried_then_reported(fake_server):
    fake_server.routes["/v1/chat/completions"] = lambda req: Reply(body=chat_reply("late"), delay_s=1.5)
    b = backend(fake_server.url, timeout_s=0.3, max_retries=1)
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match=r"failed after 2 attempts: timed out after 0.3 s"):
        b.generate([CHAT])
    assert time.perf_counter() - t0 < 5
    assert fake_server.hits["/v1/chat/completions"] == 2
    b.close()


def test_http_500_retried_with_backoff_then_error(fake_server):
    fake_server.routes["/v1/chat/completions"] = lambda req: Reply(500, {"error": {"message": "engine died"}})
    b = backend(fake_server.url)
    with pytest.raises(BackendError, match=r"failed after 3 attempts: HTTP 500: engine died"):
        b.generate([CHAT])
    assert fake_server.hits["/v1/chat/completions"] == 3
    b.close()


def test_transient_500_and_429_recover(fake_server):
    replies = iter(
        [
            Reply(500, {"error": {"message": "busy"}}),
            Reply(429, {"error": {"message": "slow down"}}, headers={"retry-after": "0"}),
            Reply(body=chat_reply("fine", 5, 1)),
        ]
    )
    fake_server.routes["/v1/chat/completions"] = lambda req: next(replies)
    b = backend(fake_server.url)
    (c,) = b.generate([CHAT])
    assert c.text == "fine" and c.prompt_tokens == 5 and c.completion_tokens == 1
    assert fake_server.hits["/v1/chat/completions"] == 3
    assert b.usage.calls == 1 and b.usage.prompt_tokens == 5
    b.close()


@pytest.mark.parametrize(
    "body",
    [
        {"id": "x", "object": "chat.completion", "choices": []},  # no choices
        {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant"}}], "usage": None},  # no text
        "<html>gateway</html>",  # not JSON at all
    ],
)
def test_malformed_response_is_not_retried(fake_server, body):
    fake_server.routes["/v1/chat/completions"] = lambda req: Reply(body=body)
    b = backend(fake_server.url)
    with pytest.raises(BackendError, match="malformed"):
        b.generate([CHAT])
    assert fake_server.hits["/v1/chat/completions"] == 1
    b.close()


def test_unknown_model_lists_served_ones(fake_server):
    fake_server.routes["/v1/chat/completions"] = lambda req: Reply(
        404, {"error": {"message": f"The model `{req['model']}` does not exist.", "code": 404}}
    )
    b = make_backend(f"openai:{fake_server.url}#nope", **FAST)
    with pytest.raises(BackendError, match=r"model 'nope' is not served .*served: fake-model"):
        b.generate([CHAT])
    assert fake_server.hits["/v1/chat/completions"] == 1
    # discovery checks the name too
    with pytest.raises(BackendError, match="not served; served: fake-model"):
        _ = b.context_length
    b.close()


def test_context_overflow_is_rejected_once(fake_server):
    msg = "This model's maximum context length is 256 tokens. However, your prompt contains at least 300 input tokens"
    fake_server.routes["/v1/chat/completions"] = lambda req: Reply(
        400, {"error": {"message": msg, "code": 400}}
    )
    b = backend(fake_server.url)
    with pytest.raises(
        BackendError, match=r"rejected \(HTTP 400\): This model's maximum context length is 256"
    ):
        b.generate([CHAT])
    assert fake_server.hits["/v1/chat/completions"] == 1
    assert b.context_length == 256  # from /v1/models (max_model_len)
    b.close()


def test_ignored_structured_choice_is_detected(fake_server):
    fake_server.routes["/v1/chat/completions"] = lambda req: Reply(body=chat_reply("Maybe, it depends"))
    b = backend(fake_server.url)
    with pytest.raises(BackendError, match="ignored the structured choice"):
        b.generate([CHAT], GenerationParams(choices=("Yes", "No")))
    sent = fake_server.requests[-1][1]
    assert sent["structured_outputs"] == {"choice": ["Yes", "No"]} and "guided_choice" not in sent
    b.close()


def test_server_without_tokenize_endpoint(fake_server):
    """A plain OpenAI-compatible server: generate works; scoring says it needs vLLM; counts are estimated."""
    fake_server.routes["/v1/chat/completions"] = lambda req: Reply(body=chat_reply("ok"))
    b = backend(fake_server.url)
    assert b.generate([CHAT])[0].text == "ok"
    with pytest.raises(BackendError, match="no /tokenize endpoint"):
        b.score_labels([CHAT], ["A", "B"])
    with pytest.warns(UserWarning, match="estimates"):
        n = b.count_tokens(CHAT)
    assert n > 0
    b.close()


def test_concurrency_is_bounded(fake_server):
    fake_server.routes["/v1/chat/completions"] = lambda req: Reply(body=chat_reply("ok"), delay_s=0.4)
    b = backend(fake_server.url, concurrency=3)
    seen = []
    out = b.generate([CHAT] * 12, on_result=lambda i, c: seen.append(i))
    assert len(out) == 12 and sorted(seen) == list(range(12))
    assert 2 <= fake_server.max_in_flight <= 3
    b.close()


def test_first_failure_stops_the_batch(fake_server):
    calls = {"n": 0}

    def route(req):
        calls["n"] += 1
        return (
            Reply(400, {"error": {"message": "bad"}})
            if calls["n"] == 1
            else Reply(body=chat_reply("ok"), delay_s=0.3)
        )

    fake_server.routes["/v1/chat/completions"] = route
    b = backend(fake_server.url, concurrency=1)
    with pytest.raises(BackendError, match="rejected"):
        b.generate([CHAT] * 20)
    time.sleep(0.5)
    assert fake_server.hits["/v1/chat/completions"] <= 3  # the rest were cancelled, not sent
    b.close()


# ---- the vLLM extras, against a scripted vLLM ------------------------------------------------------------
def fake_vllm(fake_server, max_logprobs: int = 20):
    """/tokenize splits on characters (one token per character, ids = code points); completions return
    top-k next-token log-probs (token_id:N) and prompt_logprobs computed from a fixed rule."""

    def lp(prev: int, tok: int) -> float:
        return -((prev * 7 + tok) % 11) / 4 - 0.1

    def tokenize(req):
        if "messages" in req:
            text = "".join(f"<{m['role']}>{m['content']}" for m in req["messages"]) + "<assistant>"
        else:
            text = req["prompt"]
        return Reply(body={"count": len(text), "max_model_len": 256, "tokens": [ord(c) for c in text]})

    def completions(req):
        if (req.get("logprobs") or 0) > fake_server.max_logprobs:
            msg = f"Requested logprobs of {req['logprobs']}, which is greater than max allowed: {fake_server.max_logprobs}"
            return Reply(400, {"error": {"message": msg, "code": 400}})
        prompts = req["prompt"] if isinstance(req["prompt"][0], list) else [req["prompt"]]
        choices = []
        for i, p in enumerate(prompts):
            ch = {"index": i, "text": "x", "finish_reason": "length"}
            if req.get("logprobs"):
                k = req["logprobs"]
                cand = sorted(range(65, 91), key=lambda t: -lp(p[-1], t))[:k]  # letters A..Z
                ch["logprobs"] = {
                    "tokens": [f"token_id:{cand[0]}"],
                    "token_logprobs": [lp(p[-1], cand[0])],
                    "top_logprobs": [{f"token_id:{t}": lp(p[-1], t) for t in cand}],
                    "text_offset": [0],
                }
            if req.get("prompt_logprobs") is not None:
                ch["prompt_logprobs"] = [None] + [
                    {str(p[j]): {"logprob": lp(p[j - 1], p[j]), "rank": 1}} for j in range(1, len(p))
                ]
            choices.append(ch)
        return Reply(
            body={
                "id": "c",
                "object": "text_completion",
                "model": "fake-model",
                "choices": choices,
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    fake_server.max_logprobs = max_logprobs
    fake_server.routes["/tokenize"] = tokenize
    fake_server.routes["/v1/completions"] = completions
    return lp


def test_score_labels_top_k_and_exact_fallback(fake_server):
    lp = fake_vllm(fake_server)
    prompt = [{"role": "user", "content": "pick"}]
    last = ord(">")  # the rendered prompt ends with "<assistant>"
    labels = list("ABCDEFGH")
    for k in (20, 2):  # 2: most labels come from the exact prompt_logprobs fallback
        b = backend(fake_server.url, top_logprobs=k)
        (s,) = b.score_labels([prompt], labels)
        assert s.logprobs == pytest.approx([lp(last, ord(c)) for c in labels])
        assert s.prompt_tokens == len("<user>pick<assistant>")
        b.close()
    sent = [r for p, r in fake_server.requests if p == "/v1/completions"]
    assert sent[0]["return_tokens_as_token_ids"] is True and sent[0]["max_tokens"] == 1
    assert any(r.get("prompt_logprobs") == 0 for r in sent)


@pytest.mark.parametrize("server_max", [20, 256])
def test_score_labels_wide_top_k_when_the_server_allows(fake_server, server_max):
    """Default top-k: 256 if the server allows it (serve-llm raises --max-logprobs), else vLLM's 20, learnt once."""
    lp = fake_vllm(fake_server, max_logprobs=server_max)
    b = backend(fake_server.url)
    for _ in range(2):
        (s,) = b.score_labels([[{"role": "user", "content": "x"}]], ["A", "B"])
        assert s.logprobs == pytest.approx([lp(ord(">"), ord("A")), lp(ord(">"), ord("B"))])
    asked = [
        r.get("logprobs") for p, r in fake_server.requests if p == "/v1/completions" and r.get("logprobs")
    ]
    assert asked == ([256, 20, 20] if server_max == 20 else [256, 256])
    b.close()


def test_loglik_reads_prompt_logprobs_of_the_continuation(fake_server):
    lp = fake_vllm(fake_server)
    b = backend(fake_server.url)
    res = b.loglik("ab", ["cd", "e", ""])
    assert res.prompt_tokens == 2
    assert res.scores[0].token_logprobs == pytest.approx([lp(ord("b"), ord("c")), lp(ord("c"), ord("d"))])
    assert res.scores[1].token_logprobs == pytest.approx([lp(ord("b"), ord("e"))])
    assert res.scores[2].n_tokens == 0
    b.close()


def test_request_fields_live_in_one_function():
    kw = vllm_request_kwargs("chat", GenerationParams(choices=("A", "B")), top_logprobs=5)
    assert kw["extra_body"] == {"structured_outputs": {"choice": ["A", "B"]}}
    assert kw["logprobs"] is True and kw["top_logprobs"] == 5 and "seed" not in kw
    kw = vllm_request_kwargs(
        "completions", GenerationParams(json_schema={"type": "object"}, temperature=0.7, seed=3)
    )
    assert kw["extra_body"] == {"structured_outputs": {"json": {"type": "object"}}} and kw["seed"] == 3
    kw = vllm_request_kwargs("chat", GenerationParams(json_schema={"type": "object"}))
    assert kw["response_format"]["type"] == "json_schema"
    kw = vllm_request_kwargs("completions", None, prompt_logprobs=0, token_ids_in_logprobs=True)
    assert kw == {"extra_body": {"prompt_logprobs": 0, "return_tokens_as_token_ids": True}}


def test_base_url_normalisation():
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    with pytest.raises(BackendError, match="not an http"):
        normalize_base_url("h:8000")


def test_models_endpoint_gives_default_model(fake_server):
    b = make_backend(f"openai:{fake_server.url}", **FAST)
    assert b.model == "fake-model" and b.cache_id == "openai:fake-model" and b.context_length == 256
    assert MODELS["data"][0]["id"] == b.model
    b.close()
