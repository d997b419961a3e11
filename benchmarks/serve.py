"""`charrnn serve` under concurrent streaming clients, beside `charrnn sample`.

    python -m benchmarks.serve [--clients 1,4,16,64] [--seconds 20] [--length 200]
        [--models bundled,wide] [--soak 600]

Per model (the bundled 1x384 LSTM, and "wide": a 1x512 LSTM with random weights,
made here) a server runs in its own process on 127.0.0.1; for each count of
clients, that many streaming clients each send requests of `--length` characters
(no seed: the shared batched path), one after another, for `--seconds`. Reported:
time to first character (from sending the request to the first character's event;
p50 and p99) and the aggregate characters per second, with the same model's
`charrnn sample` speed (batch 1, in this process, same length) in the same run.
`--soak SECONDS`: then 64 clients for that long, the server's resident memory every
10 s (flat memory: no growth beyond noise). Short settings for a check:
`--seconds 3 --clients 1,4 --models bundled`. Loopback only; every request loop
ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .common import cpu_model

ROOT = Path(__file__).resolve().parents[1]


def wide_model(folder: Path, hidden: int = 512) -> Path:
    """A 1xHIDDEN LSTM over the bundled model's characters, random weights (speed only)."""
    import torch

    from charrnn import api
    from charrnn.config import ModelConfig
    from charrnn.model.modelfile import save_model
    from charrnn.model.network import CharRNN

    vocab = api.load().vocab
    torch.manual_seed(0)
    path = folder / f"lstm1x{hidden}.safetensors"
    save_model(path, CharRNN(ModelConfig(vocab_size=len(vocab), hidden=hidden)), vocab)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, max_batch: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "charrnn", "serve", "-m", f"m={model}"]
    command += ["--port", str(port), "--max-batch", str(max_batch), "--max-queue", "256"]
    server = subprocess.Popen(
        command, stderr=None if os.environ.get("BENCH_LOG") else subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1).read()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


async def one_request(port: int, length: int) -> tuple[float | None, int]:
    """(seconds to the first character or None, characters) of one streamed completion."""
    body = json.dumps({"model": "m", "prompt": "", "max_tokens": length, "stream": True})
    began = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "POST /v1/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
        ).encode()
    )
    await writer.drain()
    first, chars, buffer = None, 0, b""
    while True:
        data = await reader.read(65536)
        if not data:
            break
        buffer += data
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            line = event[event.find(b"data: ") :]
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                if choice["text"]:
                    chars += len(choice["text"])
                    if first is None:
                        first = time.perf_counter() - began
    writer.close()
    return first, chars


async def load(port: int, clients: int, seconds: float, length: int) -> dict:
    firsts, totals = [], []
    stop_at = time.perf_counter() + seconds

    async def client():
        while time.perf_counter() < stop_at:
            first, chars = await one_request(port, length)
            if first is not None:
                firsts.append(first)
            totals.append(chars)

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - began
    firsts.sort()
    pick = lambda q: firsts[min(len(firsts) - 1, int(q * len(firsts)))] * 1e3  # noqa: E731
    return {
        "clients": clients,
        "requests": len(totals),
        "chars_per_s": round(sum(totals) / wall, 1),
        "ttfc_p50_ms": round(pick(0.5), 1) if firsts else None,
        "ttfc_p99_ms": round(pick(0.99), 1) if firsts else None,
    }


def sample_speed(model: str, length: int, rounds: int = 3) -> float:
    """`charrnn sample`'s characters per second (batch 1, this process), best of rounds."""
    from charrnn import api

    loaded = api.load(model)
    best = 0.0
    for seed in range(rounds):
        began = time.perf_counter()
        loaded.sample("", length=length, seed=seed)
        best = max(best, length / (time.perf_counter() - began))
    return round(best, 1)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,16,64", help="comma-separated counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="per count of clients")
    parser.add_argument("--length", type=int, default=200, help="characters per request")
    parser.add_argument("--models", default="bundled,wide", help="bundled and/or wide (1x512)")
    parser.add_argument("--soak", type=float, default=0.0, help="seconds at 64 clients")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",")]
    print(f"# CPU: {cpu_model()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        paths = {"bundled": "shakespeare"}
        if "wide" in args.models:
            paths["wide"] = str(wide_model(Path(folder)))
        for name in args.models.split(","):
            model = paths[name]
            sample = sample_speed(model, max(args.length, 2000))
            port = free_port()
            server = start_server(model, port, max(64, max(counts)))
            try:
                single = None
                for clients in counts:
                    row = asyncio.run(load(port, clients, args.seconds, args.length))
                    single = single or (row["chars_per_s"] if clients == 1 else None)
                    row.update(model=name, sample_chars_per_s=sample)
                    if single:
                        row["x_single_stream"] = round(row["chars_per_s"] / single, 2)
                    print(json.dumps(row), flush=True)
                if args.soak:
                    soak(port, server.pid, args.soak, args.length, name)
            finally:
                server.terminate()
                server.wait(15)


def soak(port: int, pid: int, seconds: float, length: int, name: str) -> None:
    """64 clients for `seconds`; the server's memory every 10 s."""

    async def run():
        task = asyncio.ensure_future(load(port, 64, seconds, length))
        began = time.perf_counter()
        while not task.done():
            at = round(time.perf_counter() - began)
            print(json.dumps({"model": name, "soak_s": at, "rss_mib": rss_mib(pid)}), flush=True)
            await asyncio.wait([task], timeout=10)
        row = task.result()
        row.update(model=name, soak=True, rss_mib_end=round(rss_mib(pid), 1))
        print(json.dumps(row), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
