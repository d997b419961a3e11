"""score --show/--top/--html, sample --html, inspect --cells and info, end to end
through the CLI, with colour forced on and off, error paths included."""

import json
import math
import shutil

import pytest
from helpers import fails, ok
from test_render import parse

from charrnn.cli import cli
from charrnn.config import ModelConfig
from charrnn.model.layout import parameter_count

ANSI = "\x1b["


def test_score_show_without_colour_prints_digit_rows(runner, tiny_run):
    out = ok(runner.invoke(cli, ["score", "--model", str(tiny_run[0]), "--show", "All:\nSpeak"]))
    assert ANSI not in out.stdout
    lines = out.stdout.splitlines()
    assert lines[0] == "All:↵" and lines[2] == "Speak"
    assert len(lines[1]) == 5 and lines[1].isdigit() and len(lines[3]) == 5
    assert "bits/char" in lines[4] and "surprisal" in out.stdout
    assert out.stdout.rstrip().splitlines()[-1].endswith("All:\\nSpeak")  # the usual table


def test_score_show_with_forced_colour(runner, tiny_run):
    args = ["score", "--model", str(tiny_run[0]), "--show", "Speak"]
    coloured = ok(runner.invoke(cli, args, env={"FORCE_COLOR": "1", "COLORTERM": "truecolor"}))
    assert ANSI in coloured.stdout and "48;2;" in coloured.stdout  # truecolor backgrounds
    assert "surprisal (bits)" in coloured.stdout
    off = ok(runner.invoke(cli, args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"}))
    assert "48;2;" not in off.stdout and "Speak\n" in off.stdout


def test_score_top_and_json(runner, tiny_run):
    model = ["--model", str(tiny_run[0])]
    table = ok(runner.invoke(cli, ["score", *model, "--top", "3", "--at", "1", "All:"]))
    assert "#3" in table.stdout and "#4" not in table.stdout
    assert "│   1 │ l    │" in table.stdout and "│   0 │" not in table.stdout
    result = ok(runner.invoke(cli, ["score", *model, "--json", "--top", "2", "All:", "Sp"]))
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [len(r["per_char"]) for r in rows] == [4, 2]
    first = rows[0]["per_char"][0]
    assert first["char"] == "A" and len(first["top"]) == 2
    assert first["bits"] == pytest.approx(-math.log2(first["prob"]))
    assert sum(-math.log(c["prob"]) for c in rows[0]["per_char"]) == pytest.approx(
        -rows[0]["log_prob"]
    )


def test_score_top_errors(runner, tiny_run):
    model = ["--model", str(tiny_run[0])]
    fails(runner.invoke(cli, ["score", *model, "--at", "1", "All:"]), "--at goes with --top", 2)
    fails(
        runner.invoke(cli, ["score", *model, "--top", "2", "--at", "9", "All:"]), "past the end", 2
    )
    fails(runner.invoke(cli, ["score", *model, "--top", "0", "All:"]), "--top", 2)


def test_score_and_sample_html(runner, tiny_run, tmp_path):
    model = ["--model", str(tiny_run[0])]
    report = tmp_path / "out" / "report.html"
    out = ok(runner.invoke(cli, ["score", *model, "--html", str(report), "All:", 'a<"&>']))
    assert "bits/char" in out.stdout and f"wrote {report}" in out.stderr
    html = report.read_text(encoding="utf-8")
    spans = parse(html).spans
    assert "".join(s["text"] for s in spans) == "All:a"  # '<', '"', '&', '>' are unknown
    assert html.count('class="text"') == 2 and "unknown characters skipped" in html
    sampled = tmp_path / "sample.html"
    args = ["sample", *model, "--seed", "1", "-n", "2", "--length", "30", "--prime", "All"]
    out = ok(runner.invoke(cli, [*args, "--html", str(sampled)]))
    html = sampled.read_text(encoding="utf-8")
    assert html.count('class="text"') == 2 and "sample 2" in html
    samples = out.stdout.rstrip("\n").split("\n\n")
    texts = ["".join(s["text"] for s in parse(html).spans[i * 33 : (i + 1) * 33]) for i in range(2)]
    assert [t.replace("↵", "\n") for t in texts] == samples


def test_inspect_cells(runner, tiny_run, tmp_path):
    model = ["--model", str(tiny_run[0])]
    text = "First Citizen:\nSpeak, speak.\nAll:\n"  # the tiny corpus has no quotes or brackets
    out = ok(runner.invoke(cli, ["inspect", "--cells", *model, "--units", "0,5-6", text]))
    titles = [line for line in out.stdout.splitlines() if line.startswith("layer 0 unit")]
    assert titles == [f"layer 0 unit {u}: hidden state h" for u in (0, 5, 6)]
    assert ANSI not in out.stdout and "maps -1 .. 1 to 0 .. 9" in out.stdout
    found = ok(
        runner.invoke(
            cli,
            [
                "inspect",
                "--cells",
                *model,
                "--find",
                "line-position",
                "--state",
                "h,c",
                "--json",
                text,
            ],
        )
    )
    data = json.loads(found.stdout)
    assert len(data["matches"]) == 10 and len(data["units"]) == 3
    assert {m["state"] for m in data["matches"]} <= {"h", "c"}
    assert abs(data["matches"][0]["r"]) >= abs(data["matches"][-1]["r"])
    assert len(data["units"][0]["values"]) == len(text)
    escaped = ok(
        runner.invoke(cli, ["inspect", "--cells", *model, "--units", "0", "--json", "A\\nB"])
    )
    assert json.loads(escaped.stdout)["text"] == "A\nB"  # \n in TEXT is a newline
    page = tmp_path / "cells.html"
    coloured = ok(
        runner.invoke(
            cli,
            ["inspect", "--cells", *model, "--find", "line-position", "--state", "gates"]
            + ["--html", str(page), text],
            env={"FORCE_COLOR": "1"},
        )
    )
    assert ANSI in coloured.stdout and "r with line-position" in coloured.stdout
    assert len(parse(page.read_text(encoding="utf-8")).spans) == 3 * len(text)


def test_inspect_with_nothing_but_a_text_shows_units_and_says_which(runner, tiny_run):
    model = ["--model", str(tiny_run[0])]
    shown = ok(runner.invoke(cli, ["inspect", *model, 'He said "All: go" (now)\\nand']))
    assert shown.stdout.count("unit ") >= 3 and "showing the units" in shown.stderr
    assert "--units N,M or --find FEATURE" in shown.stderr
    data = json.loads(ok(runner.invoke(cli, ["inspect", *model, "--json", "All: (go)"])).stdout)
    assert data["chosen_by"] in ("feature", "activity") and len(data["units"]) == 3


def test_inspect_errors(runner, tiny_run):
    model = ["--model", str(tiny_run[0])]
    fails(runner.invoke(cli, ["inspect", "--cells", *model, "--units", "99", "All"]), "unit 99")
    fails(runner.invoke(cli, ["inspect", "--cells", *model, "--units", "x", "All"]), "3,17", 2)
    fails(
        runner.invoke(cli, ["inspect", "--cells", *model, "--units", "1", "--state", "z", "A"]),
        "not recorded for a lstm",
        2,
    )
    fails(
        runner.invoke(cli, ["inspect", "--cells", *model, "--find", "quotes", "All: no quotes"]),
        "never changes",
    )
    fails(
        runner.invoke(cli, ["inspect", "--cells", *model, "--layer", "3", "--units", "1", "A"]),
        "layer 3 does not exist",
    )


def test_inspect_a_vanilla_rnn(runner, tmp_path):
    from charrnn.model.modelfile import save_model
    from charrnn.model.network import CharRNN
    from charrnn.text.vocab import Vocabulary

    vocab = Vocabulary.from_text("ab (c)\n")
    path = tmp_path / "rnn.safetensors"
    save_model(path, CharRNN(ModelConfig(len(vocab), cell="rnn", hidden=6, embedding=3)), vocab)
    model = ["--model", str(path)]
    fails(
        runner.invoke(
            cli, ["inspect", "--cells", *model, "--units", "1", "--state", "gates", "ab"]
        ),
        "a vanilla RNN has no gates",
        2,
    )
    fails(
        runner.invoke(cli, ["inspect", "--cells", *model, "--units", "1", "--state", "c", "ab"]),
        "choose from h",
        2,
    )
    out = ok(
        runner.invoke(
            cli,
            [
                "inspect",
                "--cells",
                *model,
                "--find",
                "brackets",
                "--count",
                "6",
                "--json",
                "a (b (c)) a\nb",
            ],
        )
    )
    data = json.loads(out.stdout)
    assert sorted(m["unit"] for m in data["matches"]) == list(range(6))


def test_info_run_dir_model_file_and_errors(runner, tiny_run, tmp_path):
    run = tiny_run[0]
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    out = ok(runner.invoke(cli, ["info", str(run)]))
    assert "parameters" in out.stdout and "best validation" in out.stdout
    best = min(r["val_loss"] for r in records)
    assert f"{best:.4f} nats/char" in out.stdout
    assert "(loss in nats/char)" in out.stdout and f"{records[-1]['step']:,}" in out.stdout
    data = json.loads(
        ok(runner.invoke(cli, ["info", str(run / "last.safetensors"), "--json"])).stdout
    )
    assert data["history"] == records and data["best_val_nats"] == pytest.approx(best)
    assert data["parameters"] == parameter_count(ModelConfig(**data["config"]))
    page = tmp_path / "info.html"
    ok(runner.invoke(cli, ["info", str(run), "--html", str(page)]))
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 2 and 'class="val_loss"' in html  # losses, gradient norm
    alone = tmp_path / "alone" / "m.safetensors"
    alone.parent.mkdir()
    shutil.copy(run / "best.safetensors", alone)
    out = ok(runner.invoke(cli, ["info", str(alone)]))
    assert "no training curves" in out.stdout
    fails(runner.invoke(cli, ["info", str(tmp_path / "missing")]), "no such model file")
    bundled = ok(runner.invoke(cli, ["info"]))
    assert "84 characters" in bundled.stdout
