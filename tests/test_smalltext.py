"""A small text trained from scratch: the learning-rate drop's default and the advice
to start from a trained model."""

from click.testing import CliRunner
from helpers import ok, tiny_train_args

from charrnn.cli import cli
from charrnn.config import SMALL_TEXT_LR_DROPS, ModelConfig, TrainConfig
from charrnn.model.modelfile import load_model
from charrnn.text.corpus import load_prepared
from charrnn.training.policy import default_lr_drops, is_small_text
from charrnn.training.smalltext import BUNDLED_COVERAGE, coverage, start_from_model_advice
from charrnn.training.trainer import Trainer


def test_coverage_counts_characters_with_their_repeats():
    assert coverage("abc", [8, 1, 1], {"a"}) == 0.8
    assert coverage("ab", [0, 0], {"a"}) == 0.0


def test_the_bundled_model_is_named_for_a_text_in_its_alphabet_only():
    english = start_from_model_advice(tuple("ehst "), [5, 5, 5, 5, 5])
    assert "--init-from shakespeare" in english and "100.0%" in english
    chinese = start_from_model_advice(tuple("春眠不觉晓"), [1, 1, 1, 1, 1])
    assert "shakespeare" not in chinese and "--init-from MODEL" in chinese
    # just below the share: not named
    mostly = start_from_model_advice(("e", "é"), [89, 11])
    assert BUNDLED_COVERAGE == 0.9 and "shakespeare" not in mostly


def test_lr_drops_default_follows_the_small_text_rule():
    config = ModelConfig(vocab_size=60)
    assert default_lr_drops(config, 10_000) == SMALL_TEXT_LR_DROPS == 1
    assert default_lr_drops(config, 50_000_000) == 0


def told(*args: str) -> str:
    """What `charrnn train` says on stderr (notes and warnings: without -q)."""
    result = ok(CliRunner().invoke(cli, [a for a in args if a != "-q"]))
    return result.stderr


def test_a_small_text_from_scratch_is_told_about_init_from(tmp_path, tiny_corpus_file):
    run = tmp_path / "run"
    stderr = told(*tiny_train_args(tiny_corpus_file, run, "--hidden", "64"))
    assert "--init-from shakespeare" in stderr
    assert "--lr-drops" in stderr  # the patience note says what a plateau does
    assert load_model(run).info["train_config"]["lr_drops"] == SMALL_TEXT_LR_DROPS
    # a large model warning is not given while dropout and patience guard the run
    assert "memorise" not in stderr
    bare = tiny_train_args(tiny_corpus_file, tmp_path / "bare", "--hidden", "128")
    assert "memorise" in told(*bare, "--dropout", "0", "--patience", "0")


def test_a_run_started_from_a_model_gets_no_such_advice(tmp_path, tiny_corpus_file):
    args = ["train", str(tiny_corpus_file), "--out", str(tmp_path / "ft"), "--max-time", "0"]
    stderr = told(*args, "--max-steps", "1", "--sample-chars", "0", "--init-from", "shakespeare")
    assert "starting from" in stderr and "--init-from" not in stderr


def test_only_a_text_small_for_the_model_is_validated_per_pass(tmp_path, tiny_run):
    _, result = tiny_run
    prepared = load_prepared(result.out_dir / "data")  # ~5,300 training characters
    steps = TrainConfig(max_time=0, max_steps=2)
    for hidden, small in ((64, True), (2, False)):  # ~20k and ~100 recurrent parameters
        config = ModelConfig(vocab_size=len(prepared.vocab), hidden=hidden, embedding=4)
        trainer = Trainer(prepared, config, steps, tmp_path / str(hidden))
        assert is_small_text(config, len(prepared.train)) == small
        assert trainer.schedule.train_chars == (len(prepared.train) if small else None)
        trainer.rundir.close()
