"""The openai backend against a small OpenAI-compatible HTTP server started on 127.0.0.1 by the test."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from and_engine.backends.registry import LLMConfigError, LLMError, make


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv.requests.append((self.path, body))
        prompt = body["messages"][0]["content"]
        with srv.lock:
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
        try:
            code, payload = self._answer(srv, prompt)
        finally:  # a request is in flight until its answer is ready: counted out before the client can read it
            with srv.lock:  # (after sending, the client's next request could arrive before this thread counts out)
                srv.inflight -= 1
        self._send(code, payload)

    def _answer(self, srv, prompt) -> tuple[int, dict]:
        if prompt.startswith("wait "):
            time.sleep(float(prompt.split()[1]))
        if prompt == "slow":
            time.sleep(1.0)
        if prompt == "flaky" and srv.failures < 2:
            srv.failures += 1
            return 503, {"error": "busy"}
        if prompt == "bad":
            return 400, {"error": {"message": "model 'x' not found"}}
        if prompt == "weird":
            return 200, {"unexpected": True}
        return 200, {"choices": [{"message": {"role": "assistant", "content": f"echo: {prompt}"}}]}

    def _send(self, code, payload):
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests, srv.failures = [], 0
    srv.lock, srv.inflight, srv.max_inflight = threading.Lock(), 0, 0
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _llm(server, **kw):
    llm = make("llm", "openai", dict(model="served-model", base_url=f"http://127.0.0.1:{server.server_port}",
                             batch_size=4, **kw))
    llm.backoff_s = 0.01
    return llm


def test_batch_in_order_with_sampling_params(server):
    llm = _llm(server, temperature=0.0, max_new_tokens=50, seed=7)
    assert llm.generate(["a", "b", "c", "d", "e"]) == [f"echo: {p}" for p in "abcde"]
    path, body = server.requests[0]
    assert path == "/v1/chat/completions"
    assert body["model"] == "served-model" and body["temperature"] == 0.0 and body["max_tokens"] == 50
    assert body["seed"] == 7 and body["messages"][0]["role"] == "user"
    assert llm.describe() == {"backend": "openai", "model": "served-model",
                              "params": {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 50, "seed": 7}}


def test_stream_keeps_batch_size_requests_in_flight_and_yields_as_they_finish(server):
    llm = _llm(server)  # batch_size 4
    prompts = ["wait 0.6"] + [f"wait 0.05 #{i}" for i in range(11)]
    order = [i for i, _ in llm.stream(prompts)]
    assert sorted(order) == list(range(12)) and order[-1] == 0  # the slow one finishes last, not first
    assert server.max_inflight == 4  # a full pool the whole time, never more
    assert llm.generate(prompts[1:4]) == [f"echo: {p}" for p in prompts[1:4]]  # generate = stream, in order


def test_a_failed_request_stops_the_stream_before_the_rest_is_sent(server):
    prompts = ["a", "bad"] + [f"wait 0.2 #{i}" for i in range(40)]
    with pytest.raises(LLMError, match="HTTP 400"):
        list(_llm(server).stream(prompts))
    assert len(server.requests) <= 8  # the pool in flight when it failed, not the 42


def test_base_url_with_v1_and_retry_on_503(server):
    llm = make("llm", "openai", dict(model="m", base_url=f"http://127.0.0.1:{server.server_port}/v1/"))
    llm.backoff_s = 0.01
    assert llm.generate(["flaky"]) == ["echo: flaky"] and server.failures == 2


def test_client_error_is_not_retried_and_names_the_server_message(server):
    with pytest.raises(LLMError, match="HTTP 400.*model 'x' not found"):
        _llm(server).generate(["bad"])
    assert len(server.requests) == 1


def test_unexpected_payload_and_timeout_are_clear_errors(server):
    with pytest.raises(LLMError, match="unexpected response"):
        _llm(server).generate(["weird"])
    llm = _llm(server, timeout_s=0.2)
    llm.retries = 1
    with pytest.raises(LLMError, match="failed after 2 attempts"):
        llm.generate(["slow"])


def test_unreachable_server_and_bad_config():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = srv.server_port
    srv.server_close()  # nothing listens there any more
    llm = make("llm", "openai", dict(model="m", base_url=f"http://127.0.0.1:{port}"))
    llm.retries, llm.backoff_s = 1, 0.01
    with pytest.raises(LLMError, match="failed after 2 attempts"):
        llm.generate(["a"])
    with pytest.raises(LLMConfigError, match="base_url"):
        make("llm", "openai", dict(model="m", base_url="localhost:8000"))
    with pytest.raises(LLMConfigError, match="llm.model"):
        make("llm", "openai", dict(base_url="http://127.0.0.1:1"))
