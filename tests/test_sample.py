import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from threadpoolctl import threadpool_info, threadpool_limits

import charrnn
import charrnn.inference.sample
from charrnn.bundled import bundled_corpus, bundled_model
from charrnn.cli import cli
from charrnn.config import SampleConfig
from charrnn.errors import CharRNNError, UnknownCharactersError
from charrnn.inference.blas_threads import (
    BLOCK_STEPS,
    BLOCKS,
    ThreadTuner,
    blas_thread_limit,
    candidate_counts,
    usable_cores,
)
from charrnn.inference.decoder import Chooser, Decoder
from charrnn.inference.sample import SHORT_PRIME, generate, sample_text
from charrnn.model.modelfile import load_model


@pytest.fixture(scope="module")
def bundled():
    return load_model(bundled_model())


def test_same_seed_same_sample(tiny_model):
    a = sample_text(tiny_model.model, tiny_model.vocab, "Fi", length=80, seed=5)
    b = sample_text(tiny_model.model, tiny_model.vocab, "Fi", length=80, seed=5)
    c = sample_text(tiny_model.model, tiny_model.vocab, "Fi", length=80, seed=6)
    assert a == b and a != c
    assert a[0].startswith("Fi") and len(a[0]) == 82


@pytest.mark.parametrize("length", [6, SHORT_PRIME])
def test_a_prime_read_in_numpy_leaves_the_logits_torch_gives(bundled, length):
    """Short primes are read by the numpy decoder, long ones by the fused torch model."""
    prime = bundled_corpus().read_text(encoding="utf-8")[:length]
    context = bundled.vocab.with_start(bundled.vocab.encode(prime))
    logits, _ = Decoder(bundled.config, bundled.weights).read(context.tolist())
    with torch.no_grad():
        fused, _ = bundled.model(torch.from_numpy(context)[None])
    np.testing.assert_allclose(logits, fused[:, -1].numpy(), atol=1e-5, rtol=1e-5)


def test_a_loaded_model_and_its_module_sample_the_same_text(bundled):
    for settings in ({"seed": 7}, {"seed": 3, "num_samples": 3, "top_k": 5}):
        from_file = sample_text(bundled, bundled.vocab, "ROMEO:", length=300, **settings)
        from_module = sample_text(bundled.model, bundled.vocab, "ROMEO:", length=300, **settings)
        assert from_file == from_module


def test_a_long_prime_goes_through_torch_to_the_same_greedy_text(bundled, monkeypatch):
    prime = bundled_corpus().read_text(encoding="utf-8")[: SHORT_PRIME + 200]
    through_torch = sample_text(bundled, bundled.vocab, prime, length=60, temperature=0)
    monkeypatch.setattr(charrnn.inference.sample, "SHORT_PRIME", len(prime) + 1)
    through_numpy = sample_text(bundled, bundled.vocab, prime, length=60, temperature=0)
    assert through_torch == through_numpy


SAMPLE_WITHOUT_TORCH = """
import sys
from charrnn.bundled import bundled_model
from charrnn.cli import cli
from charrnn.inference.sample import sample_text
from charrnn.model.modelfile import load_model

cli(["sample", "--length", "50", "--seed", "1", "--prime", "ROMEO:"], standalone_mode=False)
loaded = load_model(bundled_model())
sample_text(loaded, loaded.vocab, "ROMEO:", length=50, seed=1, num_samples=2)
print("torch imported:", "torch" in sys.modules)
"""


def test_sampling_from_a_model_file_never_imports_torch():
    """`import torch` is most of a short sample's time (1.3 s of 1.4 s)."""
    root = str(Path(charrnn.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", SAMPLE_WITHOUT_TORCH], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ROMEO:")
    assert result.stdout.strip().splitlines()[-1] == "torch imported: False"


def test_temperature_zero_is_greedy_argmax(tiny_model):
    model, vocab = tiny_model.model, tiny_model.vocab
    got = sample_text(model, vocab, "All:", length=30, temperature=0)[0]
    # Greedy decoding the slow way: rerun the whole text through the fused model.
    text = "All:"
    for _ in range(30):
        logits, _ = model(torch.tensor([vocab.encode("\n" + text).tolist()]))
        text += vocab.chars[int(logits[0, -1].argmax())]
    assert got == text


def test_top_k_one_and_tiny_top_p_are_greedy(tiny_model):
    model, vocab = tiny_model.model, tiny_model.vocab
    greedy = sample_text(model, vocab, "Sp", length=40, temperature=0)
    assert sample_text(model, vocab, "Sp", length=40, top_k=1, seed=1) == greedy
    assert sample_text(model, vocab, "Sp", length=40, top_p=1e-6, seed=2) == greedy


def draws(logits, n=20_000, **options) -> np.ndarray:
    """How often each id is chosen from the same logits (1, V), n times."""
    choose = Chooser(seed=0, **options)
    ids = [int(choose(logits)[0]) for _ in range(n)]
    return np.bincount(ids, minlength=logits.shape[-1]) / n


def test_gumbel_max_samples_softmax_of_logits_over_temperature():
    probs = np.array([[0.5, 0.3, 0.15, 0.05]])
    logits = np.log(probs).astype(np.float32)
    # 20,000 draws: a frequency's standard error is at most 0.0036; allow ~4 of them.
    np.testing.assert_allclose(draws(logits), probs[0], atol=0.015)
    sharper = probs[0] ** 2 / (probs[0] ** 2).sum()  # temperature 0.5 squares the odds
    np.testing.assert_allclose(draws(logits, temperature=0.5), sharper, atol=0.015)


def test_top_k_and_top_p_keep_the_right_characters():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]])).astype(np.float32)
    assert set(np.flatnonzero(draws(logits, 2000, top_p=0.7))) == {0, 1}
    assert set(np.flatnonzero(draws(logits, 2000, top_p=0.85))) == {0, 1, 2}
    kept = draws(logits, 20_000, top_k=2)
    np.testing.assert_allclose(kept, [0.5 / 0.8, 0.3 / 0.8, 0, 0], atol=0.015)


def test_stop_string_and_num_samples(tiny_model):
    samples = sample_text(
        tiny_model.model, tiny_model.vocab, "", length=400, num_samples=3, stop=":", seed=0
    )
    assert len(samples) == 3
    for text in samples:
        assert text.count(":") <= 1
        assert text.endswith(":") or len(text) == 400


def test_bad_prime_and_options_fail_before_any_output(tiny_model):
    with pytest.raises(UnknownCharactersError, match="prime"):
        generate(tiny_model.model, tiny_model.vocab, "Zebra€")
    with pytest.raises(CharRNNError):
        generate(tiny_model.model, tiny_model.vocab, "", SampleConfig(temperature=-1))
    with pytest.raises(CharRNNError, match="threads"):
        generate(tiny_model.model, tiny_model.vocab, threads=0)


def blas_threads_now() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.mark.parametrize("threads", [1, 2])
def test_blas_is_held_to_the_asked_threads_while_sampling(tiny_model, threads):
    """numpy's BLAS runs the step; spinning extra threads on a busy machine made
    sampling over 15x slower, so an asked count is kept for the whole decoding."""
    before = blas_threads_now()
    seen = []
    for _ in generate(tiny_model.model, tiny_model.vocab, "Fi", SampleConfig(length=3), threads):
        seen += blas_threads_now()
    assert seen and set(seen) == {threads}
    assert blas_threads_now() == before  # the caller's setting is back


def test_default_threads_are_tried_and_then_restored(tiny_model):
    before = blas_threads_now()
    seen = set()
    for _ in generate(
        tiny_model.model, tiny_model.vocab, "Fi", SampleConfig(length=BLOCK_STEPS * BLOCKS * 4)
    ):
        seen.update(blas_threads_now())
    assert seen == set(candidate_counts(min(usable_cores(), blas_thread_limit())))
    assert blas_threads_now() == before


def test_default_threads_stay_within_the_users_blas_limit(tiny_model):
    """OPENBLAS_NUM_THREADS=1 (or a caller's limit) is a ceiling, not a candidate."""
    seen, steps = set(), BLOCK_STEPS * BLOCKS * 4
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in generate(tiny_model.model, tiny_model.vocab, "Fi", SampleConfig(length=steps)):
            seen.update(blas_threads_now())
    assert seen == {1}


class FakeMachine:
    """Thread counts set and a clock that a step advances by its count's cost."""

    def __init__(self, cost: dict[int, float]):
        self.cost, self.now, self.threads, self.history = cost, 0.0, None, []
        self.extra = 0.0  # added to every step's cost, whatever the count

    def set_threads(self, count: int) -> None:
        self.threads = count

    def tuner(self, counts: list[int], **options) -> ThreadTuner:
        """A tuner that sets this machine's threads and reads its clock (no warm-up
        unless asked)."""
        options.setdefault("warmup_steps", 0)
        return ThreadTuner(counts, self.set_threads, clock=lambda: self.now, **options)

    def step(self) -> int:
        self.now += self.cost[self.threads] + self.extra
        self.history.append(self.threads)
        return self.threads


def test_tuner_interleaves_the_counts_keeps_the_fastest_and_checks_again():
    machine = FakeMachine({1: 3.0, 2: 2.0, 4: 3.5})
    tuner = machine.tuner([1, 2, 4], block_steps=2, blocks=2, run_steps=5)
    for _ in range(12 + 5):
        tuner.run(machine.step)
    assert machine.history == [1, 1, 2, 2, 4, 4] * 2 + [2] * 5
    assert tuner.chosen == 2 and tuner.step_seconds == {1: 3.0, 2: 2.0, 4: 3.5}
    machine.cost[2] = 50.0  # the cores became busy: two threads now wait on each other
    for _ in range(9 + 5):
        tuner.run(machine.step)
    # One step of 2 took over 4 times a whole block of 1 (4 x 2 x 3.0): dropped at once.
    assert machine.history[17:] == [1, 1, 2, 4, 4, 1, 1, 4, 4] + [1] * 5
    assert tuner.chosen == 1 and tuner.step_seconds == {1: 3.0, 2: 50.0, 4: 3.5}


def test_tuner_waits_longer_while_a_round_confirms_the_count_in_use():
    machine = FakeMachine({1: 1.0, 2: 10.0})
    tuner = machine.tuner([1, 2], block_steps=4, blocks=2, run_steps=4)
    for _ in range(2 * (4 + 2 + 4) + 4 + 8):
        tuner.run(machine.step)
    one_round = [1] * 4 + [2] * 2 + [1] * 4  # two steps of 2 (20) > 4 x 4 x 1.0: dropped
    assert machine.history == one_round + [1] * 4 + one_round + [1] * 8


@pytest.mark.parametrize(("blocks", "block_steps", "chosen"), [(4, 3, 1), (1, 12, 2)])
def test_tuner_interleaving_spreads_slow_first_steps_over_all_counts(blocks, block_steps, chosen):
    """The first steps of a run are slow whatever the count (caches, pages).
    Interleaved blocks (4 x 3) share that out and find the faster count, 1;
    one count after the other (1 x 12) would blame count 1 and pick 2."""
    machine = FakeMachine({1: 1.0, 2: 1.2})
    tuner = machine.tuner([1, 2], block_steps=block_steps, blocks=blocks)
    for step in range(24):
        machine.extra = 0.5 if step < 10 else 0.0  # the first ten steps are slower
        tuner.run(machine.step)
    assert tuner.chosen == chosen


def test_tuner_warms_every_count_up_untimed_before_the_first_round():
    machine = FakeMachine({1: 1.0, 2: 1.0})
    tuner = machine.tuner([1, 2], block_steps=2, blocks=1, warmup_steps=3)
    machine.cost[2] = 100.0  # the second count's threads start slowly: untimed
    for _ in range(3 + 3):
        tuner.run(machine.step)
    machine.cost[2] = 0.5
    for _ in range(2 + 2 + 1):
        tuner.run(machine.step)
    assert machine.history == [1, 1, 1, 2, 2, 2, 1, 1, 2, 2, 2]
    assert tuner.step_seconds == {1: 1.0, 2: 0.5} and tuner.chosen == 2


def test_tuner_leaves_out_the_first_step_of_a_block_and_pays_the_mean():
    machine = FakeMachine({1: 2.0, 2: 1.0})
    tuner = machine.tuner([1, 2], block_steps=4, blocks=1)
    for _ in range(4):
        tuner.run(machine.step)
    machine.cost[2] = 7.0  # the new count's threads wake up: not counted
    tuner.run(machine.step)
    machine.cost[2] = 1.0
    tuner.run(machine.step)
    machine.cost[2] = 3.5  # a step waiting for a core: counted, the mean pays for it
    tuner.run(machine.step)
    tuner.run(machine.step)
    assert tuner.step_seconds == {1: 2.0, 2: 8.0 / 3}
    assert tuner.chosen == 1 and machine.threads == 1


def test_tuner_with_one_count_never_times():
    def no_clock():
        raise AssertionError("a single count needs no timing")

    machine = FakeMachine({3: 1.0})
    tuner = ThreadTuner([3], machine.set_threads, clock=no_clock)
    assert [tuner.run(machine.step) for _ in range(5)] == [3] * 5


def test_candidate_counts():
    assert candidate_counts(1) == [1]
    assert candidate_counts(2) == [1, 2]
    assert candidate_counts(6) == [1, 2, 4, 6]
    assert candidate_counts(8) == [1, 2, 4, 8]


def test_sample_threads_option(tiny_run):
    runner = CliRunner()
    path = str(tiny_run[0])
    options = ["--threads", "2", "--length", "20", "--seed", "1"]
    result = runner.invoke(cli, ["sample", "--model", path, *options])
    assert result.exit_code == 0, result.output
    assert len(result.stdout) >= 20
    assert runner.invoke(cli, ["sample", "--model", path, "--threads", "0"]).exit_code == 2
