"""charrnn serve against a live uvicorn server on 127.0.0.1: the official openai client,
the text of a seed against `charrnn sample`'s, each refusal with its status, a client
that goes away freeing its rows; and the batch itself against the sampler, exactly."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import api
from charrnn.cli import cli
from charrnn.config import SampleConfig
from charrnn.serve.app import model_names, serve
from charrnn.serve.schema import Limits

openai = pytest.importorskip("openai")

LIMITS = Limits(max_body=20_000, max_tokens=2000, max_n=4, max_prompt=200, max_queue=2)


@pytest.fixture(scope="module")
def server(tiny_run):
    """(base URL, model name): the tiny run served on a free loopback port."""
    started = {}
    ready = threading.Event()

    def on_ready(uvicorn_server, port):
        started.update(server=uvicorn_server, port=port)
        ready.set()

    thread = threading.Thread(
        target=serve,
        args=([f"tiny={tiny_run[0]}"], "127.0.0.1", 0, LIMITS),
        kwargs={"ready": on_ready},
        daemon=True,
    )
    thread.start()
    assert ready.wait(60), "the server did not start"
    yield f"http://127.0.0.1:{started['port']}", started["port"]
    started["server"].should_exit = True
    thread.join(10)
    assert not thread.is_alive()


def request(port, method, path, body=None, headers=None, raw=None):
    """(status, headers, parsed JSON or text) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    conn.request(method, path, body=data, headers=headers or {})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return response.status, dict(response.getheaders()), parsed


def until_data(sock) -> bool:
    """Read a raw response until its first server-sent event."""
    seen = b""
    while b"data:" not in seen:
        part = sock.recv(4096)
        if not part:
            return False
        seen += part
    return True


def open_stream(port: int, **fields):
    """A raw socket carrying a streaming POST /v1/completions with `fields`, once its
    first server-sent event has come (a client that can vanish mid-stream)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = json.dumps({**fields, "stream": True}).encode()
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert until_data(sock)  # streaming has begun
    return sock


def client(url):
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)


def test_the_openai_client_completes_and_streams(server):
    url, _ = server
    oa = client(url)
    assert [m.id for m in oa.models.list().data] == ["tiny"]
    done = oa.completions.create(model="tiny", prompt="First", max_tokens=30, seed=3, n=2)
    assert len(done.choices) == 2 and all(len(c.text) == 30 for c in done.choices)
    assert done.usage.prompt_tokens == 5 and done.usage.completion_tokens == 60
    pieces = []
    for chunk in oa.completions.create(
        model="tiny", prompt="First", max_tokens=30, seed=3, stream=True
    ):
        pieces += [c.text for c in chunk.choices]
    one = oa.completions.create(model="tiny", prompt="First", max_tokens=30, seed=3)
    assert "".join(pieces) == one.choices[0].text  # the same seed, the same text


def test_a_seed_gives_the_text_charrnn_sample_gives(server, tiny_run):
    url, _ = server
    oa = client(url)
    for seed, settings in [(1, {}), (7, {"temperature": 1.2, "top_p": 0.9}), (11, {"stop": "\n"})]:
        got = oa.completions.create(
            model="tiny", prompt="Speak", max_tokens=80, seed=seed, **settings
        )
        options = ["--length", "80", "--seed", str(seed), "--prime", "Speak"]
        for name, value in settings.items():
            options += [f"--{name.replace('_', '-')}", str(value)]
        result = CliRunner().invoke(cli, ["sample", "-m", str(tiny_run[0]), "-q", *options])
        assert result.exit_code == 0, result.output
        assert result.stdout == "Speak" + got.choices[0].text + "\n"
        if "stop" in settings and got.choices[0].text.endswith("\n"):
            assert got.choices[0].finish_reason == "stop"


def test_the_batch_reproduces_the_sampler_exactly(tiny_run):
    """Seeded streams in a batch with others, joining at different steps: their logits and
    text are the sampler's to the bit (their products are their own)."""
    model = api.load(tiny_run[0])
    batch = model.batch()
    asks = [
        ("First", SampleConfig(length=60, seed=1), True),
        ("", SampleConfig(length=40, seed=2, temperature=0.5), False),
        ("Speak", SampleConfig(length=50, seed=3, top_p=0.8, num_samples=2), True),
        ("All", SampleConfig(length=30, seed=4, temperature=0), True),
        ("You", SampleConfig(length=45, seed=5, num_samples=3), False),
    ]
    texts, streams = {}, []
    for prime, settings, exact in asks:
        stream = batch.join(prime, settings, exact)
        streams.append(stream)
        texts[id(stream)] = [""] * settings.num_samples
        for _ in range(5):
            for s, chars in batch.step():
                texts[id(s)] = [t + c for t, c in zip(texts[id(s)], chars)]
    for _ in range(200):
        if not batch.streams:
            break
        for s, chars in batch.step():
            texts[id(s)] = [t + c for t, c in zip(texts[id(s)], chars)]
    assert not batch.streams
    for (prime, settings, exact), stream in zip(asks, streams):
        if exact:
            fields = {k: v for k, v in vars(settings).items() if k != "num_samples"}
            expected = model.samples(settings.num_samples, prime, **fields)
            assert [prime + t for t in texts[id(stream)]] == expected


def test_batched_logits_equal_the_batch_1_step_bit_for_bit(tiny_run):
    model = api.load(tiny_run[0])
    batch = model.batch()
    alone = model.batch()
    seeded = batch.join("First", SampleConfig(length=20, seed=9), exact=True)
    batch.join("Speak", SampleConfig(length=20, seed=1, num_samples=3), exact=False)
    alone.join("First", SampleConfig(length=20, seed=9), exact=True)
    for _ in range(10):
        batch.step()
        alone.step()
        assert np.array_equal(batch.logits[seeded.rows], alone.logits)


def test_each_refusal_has_its_status(server):
    _, port = server
    cases = [
        ({"prompt": "a", "max_tokens": 5000}, 422, "max_tokens"),
        ({"prompt": "a", "n": 9}, 422, "n"),
        ({"prompt": "F" * 201}, 422, "prompt"),
        ({"prompt": "a", "temperature": -1}, 422, "temperature"),
        ({"prompt": "a", "top_p": 0}, 422, "top_p"),
        ({"prompt": "a", "stop": ["x", "y"]}, 422, "stop"),
        ({"prompt": "a", "colour": 1}, 422, "colour"),
        ({"prompt": "a", "logprobs": 3}, 422, "logprobs"),
        ({"prompt": "\u2603"}, 422, "prompt"),
        ({"model": "nope", "prompt": "a"}, 404, "model"),
    ]
    for body, status, param in cases:
        code, _, answer = request(port, "POST", "/v1/completions", body)
        assert (code, answer["error"]["param"]) == (status, param), (body, answer)
        assert param in answer["error"]["message"] or status == 404
    code, _, answer = request(port, "POST", "/v1/completions", raw="{not json")
    assert code == 422 and "not valid JSON" in answer["error"]["message"]
    code, _, answer = request(port, "POST", "/v1/completions", raw="[1]")
    assert code == 422
    code, _, answer = request(port, "POST", "/v1/completions", raw="x" * 20_001)
    assert code == 413
    code, _, answer = request(port, "POST", "/v1/score", {"texts": [], "surprisal": True})
    assert (code, answer["error"]["param"]) == (422, "texts")


def test_score_model_facts_and_the_page(server, tiny_run):
    _, port = server
    code, _, answer = request(
        port, "POST", "/v1/score", {"texts": ["Speak, speak.", "All:"], "surprisal": True}
    )
    assert code == 200
    first = answer["results"][0]
    expected = api.load(tiny_run[0]).score("Speak, speak.")
    assert first["characters"] == expected.chars
    assert first["bits_per_char"] == pytest.approx(expected.bits_per_char, rel=1e-5)
    assert len(first["surprisal_bits"]) == len(first["colors"]) == len(first["text"])
    assert answer["total"]["characters"] == sum(r["characters"] for r in answer["results"])
    code, _, facts = request(port, "GET", "/v1/models/tiny")
    assert code == 200 and facts["id"] == "tiny"
    assert facts["charrnn"] == json.loads(json.dumps(api.describe(tiny_run[0]).to_dict()))
    code, headers, page = request(port, "GET", "/")
    assert code == 200 and "<textarea" in page and "http" not in page.split("<script>")[1]


def test_a_client_that_goes_away_frees_its_rows(server):
    _, port = server
    _, _, before = request(port, "GET", "/v1/stats")
    open_stream(port, prompt="F", max_tokens=2000, n=2).close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, _, stats = request(port, "GET", "/v1/stats")
        if stats["rows_cancelled"] >= before["rows_cancelled"] + 2:
            break
        time.sleep(0.05)
    assert stats["rows_cancelled"] == before["rows_cancelled"] + 2
    assert stats["rows_active"] == 0


def test_a_full_queue_answers_503_with_retry_after(tiny_run):
    """A server whose batch holds one row and whose queue holds none."""
    started, ready = {}, threading.Event()

    def on_ready(uvicorn_server, port):
        started.update(server=uvicorn_server, port=port)
        ready.set()

    limits = Limits(max_batch=1, max_queue=0, max_tokens=1_000_000)
    thread = threading.Thread(
        target=serve,
        args=([str(tiny_run[0])], "127.0.0.1", 0, limits),
        kwargs={"ready": on_ready},
        daemon=True,
    )
    thread.start()
    assert ready.wait(60)
    port = started["port"]
    try:
        sock = open_stream(port, prompt="F", max_tokens=1_000_000)  # it holds the one row
        code, headers, answer = request(port, "POST", "/v1/completions", {"prompt": "a"})
        assert code == 503 and headers["retry-after"] == "1"
        assert "busy" in answer["error"]["message"]
        sock.close()
    finally:
        started["server"].should_exit = True
        thread.join(10)
    assert not thread.is_alive()


def test_model_names():
    assert model_names([]) == {"shakespeare": "shakespeare"}
    assert model_names(["a=x.safetensors", "y/b.safetensors"]) == {
        "a": "x.safetensors",
        "b": "y/b.safetensors",
    }
    with pytest.raises(Exception, match="two models"):
        model_names(["a=x", "a=y"])


def test_serve_warns_off_loopback_and_help_shows_the_defaults(monkeypatch):
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "127.0.0.1" in result.output and "8000" in result.output
    calls = []
    monkeypatch.setattr("charrnn.serve.app.serve", lambda *args, **kw: calls.append(args))
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "without authentication" in result.stderr
    assert calls and calls[0][1:3] == ("0.0.0.0", 8000)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--api-key", "k"])
    assert "without authentication" not in result.stderr
    result = CliRunner().invoke(cli, ["serve"])
    assert "warning" not in result.stderr


def test_an_api_key_is_asked_for_when_set(tiny_run):
    started, ready = {}, threading.Event()

    def on_ready(uvicorn_server, port):
        started.update(server=uvicorn_server, port=port)
        ready.set()

    thread = threading.Thread(
        target=serve,
        args=([str(tiny_run[0])], "127.0.0.1", 0),
        kwargs={"ready": on_ready, "api_key": "sesame"},
        daemon=True,
    )
    thread.start()
    assert ready.wait(60)
    port = started["port"]
    try:
        code, _, answer = request(port, "GET", "/v1/models")
        assert code == 401 and "API key" in answer["error"]["message"]
        code, _, _ = request(port, "GET", "/v1/models", headers={"Authorization": "Bearer no"})
        assert code == 401
        code, _, _ = request(port, "GET", "/v1/models", headers={"Authorization": "Bearer sesame"})
        assert code == 200
        assert request(port, "GET", "/")[0] == 200  # the page itself asks for the key
    finally:
        started["server"].should_exit = True
        thread.join(10)


def test_sigterm_ends_the_streams_and_the_server_within_seconds(tiny_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "charrnn", "serve", "-m", str(tiny_run[0])]
    command += ["--port", str(port), "--max-tokens", "100000000"]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert "charrnn serve: http://127.0.0.1" in server.stderr.readline()
        sock = open_stream(port, prompt="F", max_tokens=100_000_000)
        began = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        assert time.monotonic() - began < 5
        rest = b""
        while part := sock.recv(65536):
            rest += part
        assert b"shutting down" in rest and rest.rstrip().endswith(b"0")  # the last chunk
        sock.close()
        log = server.stderr.read()
        assert "POST /v1/completions 200" in log
    finally:
        if server.poll() is None:
            server.kill()


def test_an_adaptive_model_batches_exactly_too(tmp_path):
    """The factored output layer draws per stream (ClusterDraw) from its own rows."""
    from test_adaptive import V, adaptive

    from charrnn.model.modelfile import save_model
    from charrnn.text.vocab import Vocabulary

    vocab = Vocabulary.from_text("\nabcdefghijklmnopqrstuvwxyz .,;:!?'ABCDEF"[:V])
    assert len(vocab) == V
    save_model(tmp_path / "adaptive.safetensors", adaptive(layers=1), vocab)
    model = api.load(tmp_path / "adaptive.safetensors")
    batch = model.batch()
    asks = [
        ("abc", SampleConfig(length=40, seed=1, temperature=0.7), True),
        ("", SampleConfig(length=40, seed=2), False),
        ("de", SampleConfig(length=40, seed=3, temperature=1.3, num_samples=2), True),
        ("f", SampleConfig(length=40, seed=4, top_k=5), True),
    ]
    streams = [batch.join(prime, settings, exact) for prime, settings, exact in asks]
    texts = {id(s): [""] * s.num_samples for s in streams}
    while batch.streams:
        for s, chars in batch.step():
            texts[id(s)] = [t + c for t, c in zip(texts[id(s)], chars)]
    for (prime, settings, exact), stream in zip(asks, streams):
        if exact:
            fields = {k: v for k, v in vars(settings).items() if k != "num_samples"}
            expected = model.samples(settings.num_samples, prime, **fields)
            assert [prime + t for t in texts[id(stream)]] == expected
