"""What the server accepts: the request bodies of /v1/completions and /v1/score checked
field by field against OpenAI's names and charrnn's limits; a bad one is one
RequestError (422, naming the field)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ..config import SampleConfig, setting


@dataclass(frozen=True)
class Limits:
    """The server's caps; those with a command-line option are `charrnn serve`'s
    (config.setting: their help, default and bounds, declared once)."""

    max_body: int = setting(1_000_000, "Bytes of a request body (beyond: 413).", cli=False)
    max_n: int = setting(16, "Choices per request.", cli=False)
    max_prompt: int = setting(
        1000, "Prompt characters (read as `charrnn sample` reads a prime).", cli=False
    )
    max_score_chars: int = setting(
        100_000, "Characters per /v1/score request, all texts together.", cli=False
    )
    max_batch: int = setting(64, "Samples advanced together in one decoder step.", minimum=1)
    max_queue: int = setting(
        64, "Requests that may wait for room in the batch; beyond them: 503.", minimum=0
    )
    max_tokens: int = setting(
        4096, "The largest max_tokens (characters) a request may ask.", minimum=1
    )
    threads: int = setting(
        1,
        "BLAS threads for each batched step (more help only while cores are idle).",
        minimum=1,
    )


DEFAULT_MAX_TOKENS = 256  # OpenAI's 16 tokens is a word or two; 256 characters is a few lines


class RequestError(Exception):
    """A request charrnn cannot take: `status` (422 unless said), one message, the field."""

    def __init__(self, message: str, param: str | None = None, status: int = 422):
        super().__init__(message)
        self.message, self.param, self.status = message, param, status


def parse_json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError("the body must be a JSON object")
    return data


# OpenAI's completion fields that charrnn takes only at their neutral value.
NEUTRAL = {
    "logprobs": (None,),
    "suffix": (None, ""),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
}
COMPLETION_FIELDS = {
    "model",
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "best_of",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "echo",
    "user",
    *NEUTRAL,
}


@dataclass(frozen=True)
class Completion:
    model: str | None
    prompt: str
    settings: SampleConfig
    seeded: bool  # the client gave a seed: the text must be `charrnn sample`'s
    stream: bool
    echo: bool
    include_usage: bool


def _unknown(data: dict, known: set) -> None:
    extra = sorted(set(data) - known)
    if extra:
        raise RequestError(f"unknown field {extra[0]!r}", extra[0])


def _number(data, name, default, low, high=math.inf, integer=False, low_open=False):
    value = data.get(name)
    if value is None:
        return default
    kind_ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not kind_ok or (not integer and not math.isfinite(value)):
        raise RequestError(f"{name} must be {'an integer' if integer else 'a number'}", name)
    if value < low or (low_open and value == low) or value > high:
        lower = f"> {low:g}" if low_open else f">= {low:g}"
        bound = lower if high == math.inf else f"{lower} and <= {high:g}"
        raise RequestError(f"{name} must be {bound}, not {value!r}", name)
    return value


def completion(data: dict, limits: Limits) -> Completion:
    """The body of POST /v1/completions, checked."""
    _unknown(data, COMPLETION_FIELDS)
    for name, neutral in NEUTRAL.items():
        if name in data and data[name] not in neutral:
            raise RequestError(f"{name} is not supported by charrnn", name)
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("model must be a string", "model")
    prompt = data.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise RequestError("prompt must be a string (or a list of one)", "prompt")
    if len(prompt) > limits.max_prompt:
        raise RequestError(
            f"prompt is {len(prompt)} characters; at most {limits.max_prompt}", "prompt"
        )
    max_tokens = _number(data, "max_tokens", DEFAULT_MAX_TOKENS, 0, limits.max_tokens, integer=True)
    n = _number(data, "n", 1, 1, limits.max_n, integer=True)
    best_of = data.get("best_of")
    if best_of is not None and best_of != n:
        raise RequestError("best_of is not supported by charrnn (leave it out)", "best_of")
    temperature = _number(data, "temperature", SampleConfig.temperature, 0, 100)
    top_p = _number(data, "top_p", 1.0, 0, 1, low_open=True)
    top_k = _number(data, "top_k", 0, 0, 1_000_000, integer=True)
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise RequestError("seed must be a non-negative integer", "seed")
    stop = data.get("stop")
    if isinstance(stop, list):
        if len(stop) > 1:
            raise RequestError("stop: charrnn takes one stop string", "stop")
        stop = stop[0] if stop else None
    if stop is not None and (not isinstance(stop, str) or not stop):
        raise RequestError("stop must be a non-empty string", "stop")
    flags = {}
    for name in ("stream", "echo"):
        value = data.get(name)
        if value is not None and not isinstance(value, bool):
            raise RequestError(f"{name} must be true or false", name)
        flags[name] = bool(value)
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestError("stream_options must be an object", "stream_options")
    if options and set(options) - {"include_usage"}:
        name = sorted(set(options) - {"include_usage"})[0]
        raise RequestError(f"unknown field 'stream_options.{name}'", "stream_options")
    settings = SampleConfig(
        length=max_tokens,
        temperature=float(temperature),
        top_k=top_k,
        top_p=float(top_p),
        num_samples=n,
        stop=stop,
        seed=seed,
    )
    include_usage = bool((options or {}).get("include_usage"))
    return Completion(
        model, prompt, settings, seed is not None, flags["stream"], flags["echo"], include_usage
    )


@dataclass(frozen=True)
class Scoring:
    model: str | None
    texts: list[str]
    surprisal: bool


def scoring(data: dict, limits: Limits) -> Scoring:
    """The body of POST /v1/score: {"texts": [...] or "...", "surprisal": bool}."""
    _unknown(data, {"model", "texts", "surprisal"})
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise RequestError("model must be a string", "model")
    texts = data.get("texts")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError("texts must be a string or a non-empty list of strings", "texts")
    total = sum(map(len, texts))
    if total > limits.max_score_chars:
        raise RequestError(
            f"texts hold {total} characters; at most {limits.max_score_chars}", "texts"
        )
    surprisal = data.get("surprisal", False)
    if not isinstance(surprisal, bool):
        raise RequestError("surprisal must be true or false", "surprisal")
    return Scoring(model, texts, surprisal)
