"""Dynamic evaluation (issue 25): static against adapted scoring, and adapting to a
text against fine-tuning on it.

    python -m benchmarks.adapt [--models DIR] [--seconds 90] [--chars 0] [--parts score,style]

`score`: for each (model, text) pair, the nats per character of static scoring, of
`score --adapt` (the defaults in config.AdaptConfig) and of `--adapt-scope output`,
and the time each took in this process: static one stream at batch 1 (`--exact`,
the like-for-like reference), static as `charrnn score --file` does it by default
(parallel streams for a long text), adapted. Models: the bundled one, and a model
trained --seconds on each of shakespeare, manpages-zh and psalms (trained into DIR
unless there already). Texts: each corpus's val.txt (its first --chars characters;
0: all), and for the bundled model two texts of other genres: psalms/val.txt and
the GPL-3 (legal prose, from Debian's base-files:
/usr/share/common-licenses/GPL-3). Adapted scoring is also timed on one and two
BLAS threads.

`style`: the bundled model made to write psalms, two ways, for each slice of
psalms/train.txt (--slices): `Model.adapt_to(slice)` (what `sample --adapt-to`
does), and `charrnn train SLICE --init-from shakespeare --max-time --finetune-seconds`;
each then scored (static) on psalms/val.txt, with the wall time it took.

One JSON line per measurement on stdout; the tables and the CPU on stderr. Run it
alone on an idle machine: the times are compared within the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from charrnn import api

from .common import SHARED, charrnn, cpu_model, run_json

CORPORA = SHARED / "corpora"
OTHER_GENRE = Path("/usr/share/common-licenses/GPL-3")
TRAINED = ("shakespeare", "manpages-zh", "psalms")


def head(path: Path, chars: int) -> str:
    text = path.read_text(encoding="utf-8")
    return text[:chars] if chars else text


def trained_model(models: Path, corpus: str, seconds: float) -> Path:
    """A model trained `seconds` on `corpus` (its run directory, reused when there)."""
    run = models / f"{corpus}-{seconds:g}s"
    if not (run / "best.safetensors").exists():
        train, val = CORPORA / corpus / "train.txt", CORPORA / corpus / "val.txt"
        command = ["train", str(train), "--val-file", str(val), "--out", str(run), "--force"]
        run_json(charrnn(*command, "--max-time", str(seconds), "--quiet", "--json"))
    return run


def timed(call):
    began = time.perf_counter()
    value = call()
    return value, time.perf_counter() - began


def score_pair(label: str, model: api.Model, text_name: str, text: str) -> dict:
    """Static and adapted figures for one model on one text."""
    model.score(text[:2000], exact=True)  # warm: torch's first calls allocate
    model.score(text[:2000], adapt=True)
    exact, exact_s = timed(lambda: model.score(text, exact=True))
    streams, streams_s = timed(lambda: model.score(text))
    adapted, adapted_s = timed(lambda: model.score(text, adapt=True))
    output, output_s = timed(lambda: model.score(text, adapt=True, adapt_scope="output"))
    return {
        "part": "score",
        "model": label,
        "text": text_name,
        "chars": exact.chars,
        "static": exact.nats_per_char,
        "static_streams": streams.nats_per_char,
        "adapted": adapted.nats_per_char,
        "gain": 1 - adapted.nats_per_char / exact.nats_per_char,
        "output_only": output.nats_per_char,
        "output_only_gain": 1 - output.nats_per_char / exact.nats_per_char,
        "output_only_s": output_s,
        "static_s": exact_s,
        "static_streams_s": streams_s,
        "adapted_s": adapted_s,
        "threads": torch.get_num_threads(),
    }


def score_part(args, models: Path) -> list[dict]:
    pairs = [("bundled", None, name, path) for name, path in bundled_texts()]
    for corpus in TRAINED:
        run = trained_model(models, corpus, args.seconds)
        pairs.append((f"{corpus} {args.seconds:g}s", run, f"{corpus} val", val_of(corpus)))
    rows = []
    for label, path, text_name, text_path in pairs:
        model = api.load(path)
        row = score_pair(label, model, text_name, head(text_path, args.chars))
        rows.append(row)
        print(json.dumps(row), flush=True)
    # one and two threads, on the first pair (the bundled model, same genre)
    model = api.load(None)
    text = head(val_of("shakespeare"), args.chars or 100_000)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        row = score_pair("bundled", model, "shakespeare val", text)
        rows.append({**row, "part": "threads"})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def val_of(corpus: str) -> Path:
    return CORPORA / corpus / "val.txt"


def bundled_texts() -> list[tuple[str, Path]]:
    texts = [
        ("shakespeare val", val_of("shakespeare")),
        ("psalms val (other genre)", val_of("psalms")),
    ]
    if OTHER_GENRE.exists():
        texts.append(("GPL-3 (other genre)", OTHER_GENRE))
    else:
        print(f"note: {OTHER_GENRE} is not here (Debian's base-files); skipped", file=sys.stderr)
    return texts


def style_part(args, work: Path) -> list[dict]:
    """adapt_to a slice of psalms against fine-tuning on it, scored on psalms val."""
    val = val_of("psalms")
    val_text = val.read_text(encoding="utf-8")
    bundled = api.load(None)
    rows = []
    for chars in args.slices:
        piece = head(CORPORA / "psalms" / "train.txt", chars)
        adapted, adapt_s = timed(lambda: bundled.adapt_to(piece))  # noqa: B023
        after = adapted.score(val_text, exact=True)
        text_file = work / f"psalms-{chars}.txt"
        text_file.write_text(piece, encoding="utf-8")
        run = work / f"finetune-{chars}"
        command = ["train", str(text_file), "--val-file", str(val), "--out", str(run), "--force"]
        command += ["--init-from", "shakespeare", "--max-time", str(args.finetune_seconds)]
        _, train_s = run_json(charrnn(*command, "--quiet", "--json"))
        tuned = api.load(run).score(val_text, exact=True)
        row = {
            "part": "style",
            "slice_chars": len(piece),
            "bundled": bundled.score(val_text, exact=True).nats_per_char,
            "adapt_to": after.nats_per_char,
            "adapt_to_s": adapt_s,
            "finetune": tuned.nats_per_char,
            "finetune_s": train_s,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def report(rows: list[dict]) -> None:
    err = sys.stderr
    print(f"CPU: {cpu_model()}", file=err)
    scores = [r for r in rows if r["part"] in ("score", "threads")]
    if scores:
        print(
            f"{'model':<18} {'text':<26} {'chars':>8} {'static':>7} {'adapted':>7} {'gain':>6}"
            f" {'x exact':>7} {'x streams':>9} {'output':>7} {'gain':>6} {'x exact':>7}"
            f" {'thr':>3}",
            file=err,
        )
        for r in scores:
            print(
                f"{r['model']:<18} {r['text']:<26} {r['chars']:>8,} {r['static']:>7.4f}"
                f" {r['adapted']:>7.4f} {r['gain']:>6.1%}"
                f" {r['adapted_s'] / r['static_s']:>7.2f}"
                f" {r['adapted_s'] / r['static_streams_s']:>9.2f} {r['output_only']:>7.4f}"
                f" {r['output_only_gain']:>6.1%} {r['output_only_s'] / r['static_s']:>7.2f}"
                f" {r['threads']:>3}",
                file=err,
            )
    styles = [r for r in rows if r["part"] == "style"]
    if styles:
        print(
            f"{'psalms chars':>12} {'bundled':>8} {'adapt_to':>8} {'s':>6}"
            f" {'finetune':>8} {'s':>6}",
            file=err,
        )
        for r in styles:
            print(
                f"{r['slice_chars']:>12,} {r['bundled']:>8.4f} {r['adapt_to']:>8.4f}"
                f" {r['adapt_to_s']:>6.1f} {r['finetune']:>8.4f} {r['finetune_s']:>6.1f}",
                file=err,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, help="where the trained models are kept")
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--chars", type=int, default=0, help="score only the first N (0: all)")
    parser.add_argument("--parts", default="score,style")
    parser.add_argument(
        "--slices", default="5000,20000,0", help="psalms train slices for style (0: all)"
    )
    parser.add_argument("--finetune-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    args.slices = [int(v) for v in args.slices.split(",")]
    parts = args.parts.split(",")
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as scratch:
        models = args.models or Path(scratch)
        models.mkdir(parents=True, exist_ok=True)
        rows = []
        if "score" in parts:
            rows += score_part(args, models)
        if "style" in parts:
            rows += style_part(args, Path(scratch))
    report(rows)


if __name__ == "__main__":
    main()
