"""`charrnn serve`: the HTTP API (OpenAI-compatible completions and models, charrnn's
score and model facts) and the web page, as a Starlette app run by uvicorn; one log
line per request on stderr."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import secrets
import sys
import threading
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import api
from ..errors import CharRNNError
from ..views.colorscale import LEGEND_BITS, hex_color, surprisal_rgb
from .engine import Busy, Engine, Job
from .schema import Limits, RequestError, completion, parse_json, scoring

PAGE = Path(__file__).with_name("page.html")


def model_names(paths: list[str]) -> dict[str, str]:
    """-m values -> {name: path}: NAME=PATH names a model; otherwise its file's stem (a run
    directory: the directory's name); none: the bundled model as "shakespeare"."""
    if not paths:
        return {"shakespeare": "shakespeare"}
    named = {}
    for value in paths:
        name, sep, path = value.partition("=")
        if not sep:
            path = value
            p = Path(value)
            name = p.name if p.is_dir() else p.stem
        if name in named:
            raise CharRNNError(f"two models are named {name!r}; name them: -m NAME=PATH")
        named[name] = path
    return named


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(message: str, status: int, param: str | None = None, headers=None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


class Server:
    """The models, the engine and the routes."""

    def __init__(self, models: dict, limits: Limits | None = None, api_key: str | None = None):
        self.models = models  # name -> api.Model
        self.limits = limits or Limits()
        self.api_key = api_key
        limits = self.limits
        self.engine = Engine(models, limits.max_batch, limits.max_queue, limits.threads)
        self.created = int(time.time())
        self.score_lock = threading.Lock()  # torch scoring, one request at a time
        self.facts = {name: api.describe(model.path) for name, model in models.items()}

    # ------------------------------------------------------------------ the app
    def app(self) -> Starlette:
        routes = [
            Route("/", self.page),
            Route("/v1/models", self.list_models),
            Route("/v1/models/{name}", self.get_model),
            Route("/v1/completions", self.complete, methods=["POST"]),
            Route("/v1/score", self.score, methods=["POST"]),
            Route("/v1/stats", self.stats),
        ]
        handlers = {RequestError: self._refuse}
        app = Starlette(routes=routes, lifespan=self._lifespan, exception_handlers=handlers)
        return RequestLog(Guard(app, self))

    def _lifespan(self, app):
        server = self

        class Lifespan:
            async def __aenter__(self):
                server.engine.start()

            async def __aexit__(self, *exc):
                server.engine.stop()

        return Lifespan()

    async def _refuse(self, request: Request, exc: RequestError) -> Response:
        return _error(exc.message, exc.status, exc.param)

    def page(self, request: Request) -> Response:
        legend = "".join(
            f'<span style="background:{hex_color(surprisal_rgb(b))}">{b} bits</span>'
            for b in LEGEND_BITS
        )
        html = PAGE.read_text(encoding="utf-8").replace("<!--LEGEND-->", legend)
        return HTMLResponse(html)

    def _model(self, name: str | None) -> tuple[str, object]:
        if name is None:
            name = next(iter(self.models))
        if name not in self.models:
            raise RequestError(
                f"no model {name!r}; this server has {', '.join(self.models)}", "model", 404
            )
        return name, self.models[name]

    def _card(self, name: str) -> dict:
        return {"id": name, "object": "model", "created": self.created, "owned_by": "charrnn"}

    def list_models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [self._card(n) for n in self.models]})

    def get_model(self, request: Request) -> Response:
        name, _ = self._model(request.path_params["name"])
        facts = self.facts[name]
        rows = [[label, value] for label, value in facts.rows()]
        return JSONResponse({**self._card(name), "charrnn": facts.to_dict(), "facts": rows})

    def stats(self, request: Request) -> Response:
        return JSONResponse(self.engine.stats())

    async def _body(self, request: Request) -> dict:
        limit = self.limits.max_body
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestError(f"the body is over {limit} bytes", None, 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise RequestError(f"the body is over {limit} bytes", None, 413)
        return parse_json(bytes(body))

    async def complete(self, request: Request) -> Response:
        asked = completion(await self._body(request), self.limits)
        name, model = self._model(asked.model)
        # Without a seed, a fresh one, drawn where `charrnn sample` draws its own.
        settings = api.sample_settings(**dataclasses.asdict(asked.settings))
        unknown = model.vocab.unknown_chars(asked.prompt)
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10])
            raise RequestError(f"prompt has characters the model has never seen: {shown}", "prompt")
        job = Job(name, asked.prompt, settings, asked.seeded, asyncio.get_running_loop())
        try:
            self.engine.submit(job)
        except Busy as exc:
            return _error(f"busy: {exc}; try again shortly", 503, headers={"Retry-After": "1"})
        request.scope["charrnn.log"] = job
        ident, created = f"cmpl-{secrets.token_hex(12)}", int(time.time())
        head = asked.prompt if asked.echo else ""
        usage = lambda: {  # noqa: E731
            "prompt_tokens": len(asked.prompt),
            "completion_tokens": job.produced_chars(),
            "total_tokens": len(asked.prompt) + job.produced_chars(),
        }
        base = {"id": ident, "object": "text_completion", "created": created, "model": name}
        if asked.stream:
            return StreamingResponse(
                self._events(job, base, head, asked.include_usage, usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        texts = [head] * settings.num_samples
        try:
            async for pieces in job.chunks():
                texts = [t + p for t, p in zip(texts, pieces)]
        finally:
            if not job.done:
                job.cancel()
        if job.error:
            return _error(job.error, 503 if "shutting down" in job.error else 422)
        choices = [
            {"text": t, "index": i, "logprobs": None, "finish_reason": r}
            for i, (t, r) in enumerate(zip(texts, job.reasons()))
        ]
        return JSONResponse({**base, "choices": choices, "usage": usage()})

    async def _events(self, job: Job, base: dict, head: str, include_usage: bool, usage):
        def event(data) -> str:
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        try:
            if head:
                choices = [
                    {"text": head, "index": i, "logprobs": None, "finish_reason": None}
                    for i in range(job.settings.num_samples)
                ]
                yield event({**base, "choices": choices})
            async for pieces in job.chunks():
                choices = [
                    {"text": p, "index": i, "logprobs": None, "finish_reason": None}
                    for i, p in enumerate(pieces)
                    if p
                ]
                yield event({**base, "choices": choices})
            if job.error:
                yield event({"error": {"message": job.error, "type": "server_error"}})
            else:
                choices = [
                    {"text": "", "index": i, "logprobs": None, "finish_reason": r}
                    for i, r in enumerate(job.reasons())
                ]
                yield event({**base, "choices": choices})
                if include_usage:
                    yield event({**base, "choices": [], "usage": usage()})
            yield "data: [DONE]\n\n"
        finally:
            if not job.done:  # the client went away (or the server is stopping)
                job.cancel()

    async def score(self, request: Request) -> Response:
        asked = scoring(await self._body(request), self.limits)
        name, model = self._model(asked.model)
        from starlette.concurrency import run_in_threadpool

        def work():
            with self.score_lock:
                scores = model.score(asked.texts)
                analyses = [model.analyze(t) for t in asked.texts] if asked.surprisal else None
            return scores, analyses

        scores, analyses = await run_in_threadpool(work)
        results = []
        for i, s in enumerate(scores):
            result = {"index": i, **_figures(s)}
            if analyses:
                bits = analyses[i].surprisal_bits.tolist()
                result["text"] = analyses[i].text
                result["surprisal_bits"] = [None if b != b else round(b, 4) for b in bits]
                colors = [surprisal_rgb(b) for b in bits]
                result["colors"] = [hex_color(c) if c else None for c in colors]
            results.append(result)
        request.scope["charrnn.log"] = f"model={name} texts={len(asked.texts)}"
        body = {"object": "score", "model": name, "results": results}
        body["total"] = _figures(api.total(scores))
        return JSONResponse(body)


def _figures(score) -> dict:
    nan = lambda x: None if x != x else x  # noqa: E731
    return {
        "characters": score.chars,
        "unknown_characters": score.unknown_chars,
        "nats": score.nats,
        "nats_per_char": nan(score.nats_per_char),
        "bits_per_char": nan(score.bits_per_char),
    }


class Guard:
    """ASGI middleware: the API key on /v1/ (when one is set); a client gone before its
    body was read ends the request quietly."""

    def __init__(self, app, server: Server):
        self.inner, self.server = app, server

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        key = self.server.api_key
        if key and scope["path"].startswith("/v1/"):
            headers = dict(scope["headers"])
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not secrets.compare_digest(given, f"Bearer {key}"):
                return await _error("a valid API key is needed (Bearer)", 401)(scope, receive, send)
        try:
            await self.inner(scope, receive, send)
        except ClientDisconnect:
            pass


class RequestLog:
    """ASGI middleware: one line per request on stderr, when its response has ended."""

    def __init__(self, app):
        self.inner = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        begun, status = time.perf_counter(), 0

        async def logging_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.inner(scope, receive, logging_send)
        finally:
            client = scope.get("client") or ("-", 0)
            note = scope.get("charrnn.log")
            if isinstance(note, Job):
                note = note.describe()
            line = (
                f"{client[0]} {scope['method']} {scope['path']} {status or '-'} "
                f"{(time.perf_counter() - begun) * 1000:.0f}ms"
            )
            print(f"{line} {note}" if note else line, file=sys.stderr, flush=True)


def serve(
    paths: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    api_key: str | None = None,
    ready=None,
) -> None:
    """Load the models and serve them until SIGTERM or Ctrl-C, which cut the requests in
    flight short (within a few seconds). `ready(uvicorn_server, port)`: called once
    listening (set its should_exit to stop it)."""
    import uvicorn

    models = {name: api.load(path) for name, path in model_names(paths).items()}
    server = Server(models, limits, api_key)

    class Draining(uvicorn.Server):
        def handle_exit(self, sig, frame):
            server.engine.stop(timeout=0.5)  # open streams end now, not at their length
            super().handle_exit(sig, frame)

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if ready is not None and self.started:
                ready(self, self.servers[0].sockets[0].getsockname()[1])

    config = uvicorn.Config(
        server.app(),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    Draining(config).run()
