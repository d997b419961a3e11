"""The command line end to end on a tiny corpus, error paths included."""

import json

import pytest
from helpers import TINY_TRAIN, fails, ok, tiny_train_args

from charrnn.cli import cli
from charrnn.model.modelfile import load_model


def test_preprocess_then_train_then_sample_then_score(runner, tiny_corpus_file, tmp_path):
    prepared = tmp_path / "prep"
    out = ok(runner.invoke(cli, ["preprocess", str(tiny_corpus_file), "--out", str(prepared)]))
    assert "vocabulary of" in out.stdout
    trained = ok(runner.invoke(cli, ["train", str(prepared), "--json", "--quiet", *TINY_TRAIN]))
    summary = json.loads(trained.stdout)
    assert summary["steps"] == 8
    for key in ("model", "chars_per_s", "best_val_nats", "best_val_bpc"):
        assert key in summary
    run = tmp_path / "runs" / "prep"
    assert (run / "best.safetensors").exists() and (run / "last.safetensors").exists()
    assert len((run / "metrics.jsonl").read_text().splitlines()) >= 1

    sampled = ok(
        runner.invoke(
            cli,
            ["sample", "--model", str(run), "--prime", "First", "--length", "50", "--seed", "3"],
        )
    )
    assert sampled.stdout.startswith("First") and len(sampled.stdout) == 56
    again = ok(
        runner.invoke(
            cli,
            ["sample", "--model", str(run), "--prime", "First", "--length", "50", "--seed", "3"],
        )
    )
    assert again.stdout == sampled.stdout
    unseeded = ok(runner.invoke(cli, ["sample", "--model", str(run), "--length", "5"]))
    assert "seed: " in unseeded.stderr

    scored = ok(
        runner.invoke(cli, ["score", "--model", str(run), "--json", "--total", "Speak", "All:"])
    )
    rows = [json.loads(line) for line in scored.stdout.splitlines()]
    assert [r["chars"] for r in rows] == [5, 4, 9]
    assert [r["kind"] for r in rows] == ["text", "text", "total"]
    for key in ("nats_per_char", "bits_per_char", "perplexity", "unknown_chars"):
        assert key in rows[-1]


def test_train_refuses_to_overwrite_without_force(runner, tiny_corpus_file, tmp_path):
    args = ["train", str(tiny_corpus_file), "--out", str(tmp_path / "r"), "-q", *TINY_TRAIN]
    ok(runner.invoke(cli, args))
    before = (tmp_path / "r" / "best.safetensors").read_bytes()
    fails(runner.invoke(cli, args), "--force")
    assert (tmp_path / "r" / "best.safetensors").read_bytes() == before
    ok(runner.invoke(cli, [*args, "--force", "--seed", "9"]))


def test_dropout_default_follows_the_size_of_the_text(runner, tiny_corpus_file, tmp_path):
    """More parameters than training characters (~5,300 here): dropout 0.5, said on
    stderr, unless --dropout is given; a text as long as the model is large: none."""
    cases = {
        "large model": (["--hidden", "64"], 0.5),  # ~20k parameters
        "large model, --dropout 0": (["--hidden", "64", "--dropout", "0"], 0.0),
        "small model": ([], 0.0),  # ~2k parameters
    }
    for name, (extra, dropout) in cases.items():
        run = tmp_path / name.replace(" ", "_").replace(",", "")
        args = [a for a in tiny_train_args(tiny_corpus_file, run, *extra) if a != "-q"]
        trained = ok(runner.invoke(cli, args))  # notes are not for --quiet
        assert load_model(run / "last.safetensors").config.dropout == dropout, name
        assert ("note: dropout 0.5" in trained.stderr) == (dropout > 0), name


def test_score_lines_file_stdin_and_document(runner, tiny_run, tmp_path):
    run = str(tiny_run[0])
    lines = tmp_path / "lines.txt"
    lines.write_text("Speak, speak.\nAll:\n")
    from_file = ok(runner.invoke(cli, ["score", "--model", run, "--lines", str(lines), "--json"]))
    from_stdin = ok(
        runner.invoke(cli, ["score", "--model", run, "--json"], input="Speak, speak.\nAll:\n")
    )
    assert from_file.stdout == from_stdin.stdout
    assert len(from_file.stdout.splitlines()) == 2
    doc = ok(runner.invoke(cli, ["score", "--model", run, "--file", str(lines), "--json"]))
    assert json.loads(doc.stdout.splitlines()[0])["chars"] == len("Speak, speak.\nAll:\n")
    table = ok(runner.invoke(cli, ["score", "--model", run, "Speak", "All"]))
    assert "bits/char" in table.stdout and "(total)" in table.stdout


def test_score_reports_unknown_characters(runner, tiny_run):
    result = ok(runner.invoke(cli, ["score", "--model", str(tiny_run[0]), "--json", "Sp€ak"]))
    assert json.loads(result.stdout.splitlines()[0])["unknown_chars"] == 1
    assert "'€'" in result.stderr


CORPORA = {
    "tang": ("床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n", "明月", "举头望明月"),
    "german": ("Über Größe und Mäßigung: Fräulein Müller aß süße Äpfel.\n", "Über", "süße Äpfel"),
    "code": ("def f(x):\n    return {'a': [x, x ** 2]}  # dict\n\n", "def ", "return x"),
}


@pytest.mark.parametrize("name", CORPORA)
def test_corpora_in_any_script_end_to_end(runner, tmp_path, name):
    text, prime, scored_text = CORPORA[name]
    (tmp_path / f"{name}.txt").write_text(text * 40, encoding="utf-8")
    ok(runner.invoke(cli, ["preprocess", str(tmp_path / f"{name}.txt")]))
    ok(runner.invoke(cli, ["train", str(tmp_path / f"{name}.txt"), "-q", *TINY_TRAIN]))
    sampled = ok(
        runner.invoke(
            cli,
            [
                "sample",
                "--model",
                f"runs/{name}",
                "--prime",
                prime,
                "--length",
                "20",
                "--seed",
                "1",
            ],
        )
    )
    assert sampled.stdout.startswith(prime)
    scored = ok(runner.invoke(cli, ["score", "--model", f"runs/{name}", "--json", scored_text]))
    assert json.loads(scored.stdout.splitlines()[0])["chars"] == len(scored_text)


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["train", "missing.txt"], "no such file", 1),
        (["preprocess", "missing.txt"], "no such file", 1),
        (["sample", "--model", "missing.safetensors"], "no such model file", 1),
        (["score", "--model", "missing.safetensors", "hi"], "no such model file", 1),
        (["sample", "--temperature", "-1"], "--temperature", 2),
        (["sample", "--top-p", "0"], "--top-p", 2),
        (["train", "--cell", "transformer"], "--cell", 2),
        (["train", "--weight-decay-on", "biases"], "--weight-decay-on", 2),
        (["train", "--max-time", "0", "--max-steps", "0"], "budget", 1),
    ],
)
def test_error_paths(runner, args, message, code):
    fails(runner.invoke(cli, args), message, code)


def test_empty_corpus_and_unknown_prime(runner, tmp_path, tiny_run):
    (tmp_path / "empty.txt").write_text("")
    fails(runner.invoke(cli, ["train", str(tmp_path / "empty.txt")]), "no text")
    result = fails(
        runner.invoke(cli, ["sample", "--model", str(tiny_run[0]), "--prime", "Zebra€"]),
        "never seen",
    )
    assert result.stdout == ""  # nothing was printed before the error


def test_corrupt_model_file(runner, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    fails(runner.invoke(cli, ["score", "--model", str(bad), "x"]), "not a charrnn")


def test_corpus_too_short_for_a_batch(runner, tmp_path):
    (tmp_path / "short.txt").write_text("ab\ncd\n" * 20)
    fails(
        runner.invoke(cli, ["train", str(tmp_path / "short.txt"), "--batch-size", "64"]),
        "too short",
    )


def test_binary_file_is_refused_with_one_line(runner, tmp_path):
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    for errors in ("strict", "replace"):
        result = fails(
            runner.invoke(cli, ["preprocess", str(tmp_path / "image.png"), "--errors", errors]),
            "image.png",
        )
        assert len(result.stderr.strip().splitlines()) == 1


def test_score_strict_refuses_unknown_characters(runner, tiny_run):
    result = fails(
        runner.invoke(cli, ["score", "--model", str(tiny_run[0]), "--strict", "Sp€ak"]), "'€'"
    )
    assert result.stdout == ""
    ok(runner.invoke(cli, ["score", "--model", str(tiny_run[0]), "--strict", "Speak"]))


def test_normalization_travels_in_the_model_file(runner, tmp_path):
    (tmp_path / "fr.txt").write_text("Le caf\u00e9 est cr\u00e8me.\n" * 200, encoding="utf-8")
    ok(runner.invoke(cli, ["train", str(tmp_path / "fr.txt"), "-q", *TINY_TRAIN]))
    scores = []
    for text in ("caf\u00e9", "cafe\u0301"):  # composed, decomposed
        result = ok(runner.invoke(cli, ["score", "--model", "runs/fr", "--json", text]))
        scores.append(json.loads(result.stdout.splitlines()[0]))
    assert scores[0] == {**scores[1], "text": scores[0]["text"]}
    assert scores[1]["unknown_chars"] == 0
    sampled = ok(
        runner.invoke(
            cli,
            [
                "sample",
                "--model",
                "runs/fr",
                "--prime",
                "cafe\u0301",
                "--length",
                "5",
                "--seed",
                "1",
            ],
        )
    )
    assert sampled.stdout.startswith("cafe\u0301")


def test_skip_unknown_prime_characters_with_a_warning(runner, tiny_run):
    result = ok(
        runner.invoke(
            cli,
            [
                "sample",
                "--model",
                str(tiny_run[0]),
                "--prime",
                "Sp€ak",
                "--skip-unknown",
                "--length",
                "3",
                "--seed",
                "1",
            ],
        )
    )
    assert "'€'" in result.stderr and result.stdout.startswith("Spak")


def test_the_failure_helper_sees_an_exception_the_output_never_shows(runner, tiny_run, monkeypatch):
    """CliRunner keeps an uncaught exception in `result.exception`: its output holds no
    traceback even when a user would have seen one, so `fails` checks the exception."""
    import charrnn.inference.score as score_module

    def bug(*args, **kwargs):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(score_module, "score_texts", bug)
    result = runner.invoke(cli, ["score", "-m", str(tiny_run[0]), "All"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    with pytest.raises(AssertionError, match="RuntimeError"):
        fails(result, "")
