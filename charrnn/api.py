"""The Python front door: load a model and sample, score or analyse with it;
train or resume a run. The CLI is built on the same library calls.

    import charrnn
    m = charrnn.load()                          # the bundled Shakespeare model
    print(m.sample("ROMEO.", length=200, temperature=0.8, seed=1))
    print(m.score("To be, or not to be").bits_per_char)
    result = charrnn.train("notes.txt", out="runs/notes", max_time=60, hidden=256)
    m = charrnn.load(result.out_dir)

Loading and sampling run in numpy; torch is imported only by what needs it
(scoring, analysis, training).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .config import (
    DataConfig,
    ModelConfig,
    RuntimeConfig,
    SampleConfig,
    TrainConfig,
    train_config,
)
from .errors import CharRNNError

if TYPE_CHECKING:
    from .inference.analysis import Activations, TextAnalysis
    from .inference.gradients import GradientDecay
    from .inference.score import TextScore
    from .model.modelfile import LoadedModel
    from .model.network import CharRNN
    from .text.vocab import Vocabulary
    from .training.trainer import Reporter, TrainResult


class Model:
    """A trained model with its vocabulary, ready to sample, score and analyse."""

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def config(self) -> ModelConfig:
        return self.loaded.config

    @property
    def vocab(self) -> Vocabulary:
        return self.loaded.vocab

    @property
    def info(self) -> dict:
        """Training facts stored with the weights (steps, validation loss, settings)."""
        return self.loaded.info

    @property
    def module(self) -> CharRNN:
        """The torch module (built on first use; CPU, eval mode)."""
        return self.loaded.model

    def __repr__(self) -> str:
        c = self.config
        return (
            f"<charrnn.Model {c.cell} {c.layers}x{c.hidden}, {len(self.vocab)} characters, "
            f"from {self.path}>"
        )

    def samples(
        self, count: int, prime: str = "", *, threads: int | None = None, **settings
    ) -> list[str]:
        """`count` independent samples, each the prime plus what follows it.

        `settings` are SampleConfig's fields (length, temperature, top_k, top_p,
        stop, seed); without a seed each call draws a fresh one.
        """
        from .inference.sample import sample_text

        config = _sample_config(num_samples=count, **settings)
        return sample_text(self.loaded, self.vocab, prime, threads, **dataclasses.asdict(config))

    def sample(self, prime: str = "", *, threads: int | None = None, **settings) -> str:
        """One sample: the prime plus what the model writes after it (see `samples`)."""
        return self.samples(1, prime, threads=threads, **settings)[0]

    def score(
        self, text: str | Iterable[str], *, exact: bool = False
    ) -> TextScore | list[TextScore]:
        """How well the model predicts a text (a str: one TextScore, read as one
        document) or each of several independent texts (a list: one TextScore each).
        Characters the model has never seen are skipped and counted."""
        from .inference.score import score_text, score_texts

        if isinstance(text, str):
            return score_text(self.module, self.vocab, text, exact=exact)
        return score_texts(self.module, self.vocab, list(text))

    def analyze(self, text: str, top_k: int = 5) -> TextAnalysis:
        """Per character: its probability, surprisal and the top_k likeliest alternatives."""
        from .inference.analysis import analyze_text

        return analyze_text(self.module, self.vocab, text, top_k=top_k)

    def activations(self, text: str, layer: int = -1) -> Activations:
        """Hidden state (and cell state, gates) of one layer after each character."""
        from .inference.analysis import record_activations

        return record_activations(self.module, self.vocab, text, layer)

    def gradient_decay(
        self, text: str | None = None, distance: int | None = None, layer: int = -1
    ) -> GradientDecay:
        """How far back the gradient of the loss reaches: the mean norm of
        d loss_t / d h_{t-k} (and c_{t-k} for LSTM) of one layer, for k = 1..distance
        (default 100, or as far as the text allows). Without a text, a passage of the
        model's training text."""
        from .inference.gradients import gradient_decay, model_passage

        if text is None:
            text, _ = model_passage(self.loaded)
        return gradient_decay(self.module, self.vocab, text, distance, layer)


def _sample_config(**settings) -> SampleConfig:
    known = {f.name for f in dataclasses.fields(SampleConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise CharRNNError(
            f"unknown sampling setting {unknown[0]!r}; choose from {', '.join(sorted(known))}"
        )
    if settings.get("seed") is None:
        settings["seed"] = secrets.randbelow(2**31)
    return SampleConfig(**settings)


def _split_settings(settings: dict, finetune: bool = False) -> dict:
    """Flat keyword settings -> the keyword arguments of training.session.train; with
    `finetune` (init_from), the fine-tuning defaults of the training settings not given."""
    groups = {
        "data": DataConfig,
        "model": ModelConfig,
        "train": TrainConfig,
        "runtime": RuntimeConfig,
    }
    owner = {
        f.name: group
        for group, cls in groups.items()
        for f in dataclasses.fields(cls)
        if f.name != "vocab_size"
    }
    unknown = sorted(set(settings) - set(owner))
    if unknown:
        raise CharRNNError(
            f"unknown training setting {unknown[0]!r}; choose from {', '.join(sorted(owner))}"
        )
    parts: dict[str, dict] = {group: {} for group in groups}
    for name, value in settings.items():
        parts[owner[name]][name] = value
    return {
        "data": DataConfig(**parts["data"]),
        "model": parts["model"],  # the vocabulary size comes from the corpus
        "train": train_config(parts["train"], finetune),
        "runtime": RuntimeConfig(**parts["runtime"]),
    }


def train(
    corpus: str | Path | None = None,
    out: str | Path | None = None,
    *,
    force: bool = False,
    reporter: Reporter | None = None,
    init_from: str | Path | None = None,
    **settings,
) -> TrainResult:
    """Train a model on `corpus` (a text file or a prepared directory; None: the bundled
    Shakespeare) into the run directory `out` (default runs/<corpus name>), as
    `charrnn train` does, and return the TrainResult (`.best_model`, `.out_dir`, ...).

    `settings` are fields of DataConfig, ModelConfig, TrainConfig and RuntimeConfig
    (hidden=256, max_time=60, device="cuda", ...). Without `dropout`, a text short for
    the model's recurrent layers gets SMALL_TEXT_DROPOUT (config.default_dropout). An earlier
    run in `out` is an error unless `force` (which deletes it). `reporter` (a
    training.trainer.Reporter) hears of progress; by default nothing is printed.

    `init_from` (a model file, a run directory, or "shakespeare" for the bundled model)
    fine-tunes that model: its architecture (model settings must agree with it), the
    union of its and the corpus's characters, and the fine-tuning defaults
    (config.FINETUNE_LR, FINETUNE_WARMUP_STEPS, FINETUNE_DROPOUT) for what is not given.
    """
    from .training.session import train as train_run

    parts = _split_settings(settings, finetune=init_from is not None)
    return train_run(corpus, out, force=force, reporter=reporter, init_from=init_from, **parts)


def resume(
    run_dir: str | Path,
    *,
    reporter: Reporter | None = None,
    device: str = RuntimeConfig.device,
    precision: str = RuntimeConfig.precision,
    **changes,
) -> TrainResult:
    """Continue the run in `run_dir` from its newest training state to the end of its
    budget (on the CPU, exactly as if it had not stopped); a finished run returns its
    result as it stands (`stop_reason` says why it stopped).

    `precision` "auto" continues in the precision the run trained in where this
    machine has it (float32 otherwise, with a note: training.precision).
    `changes` are TrainConfig.RESUMABLE settings: `max_time` and/or `max_steps`
    extend the run by that many more seconds / steps (a new learning-rate warm-up
    and cosine, see training.session.resume_run); `patience`, `lr_drops`, `sample_chars`
    replace the run's.
    """
    from .training.session import resume_run

    unknown = sorted(set(changes) - set(TrainConfig.RESUMABLE))
    if unknown:
        raise CharRNNError(
            f"a resume takes the run's settings from its directory; {unknown[0]!r} cannot "
            f"change (these can: {', '.join(TrainConfig.RESUMABLE)})"
        )
    runtime = RuntimeConfig(device, precision)
    trainer = resume_run(run_dir, runtime=runtime, reporter=reporter, **changes)
    try:
        return trainer.run()
    finally:
        trainer.runtime.close()


def load(path: str | Path | None = None) -> Model:
    """A model file, or a run directory's best model; None: the bundled Shakespeare model."""
    from .bundled import bundled_model
    from .model.modelfile import load_model

    return Model(load_model(path if path is not None else bundled_model()))
