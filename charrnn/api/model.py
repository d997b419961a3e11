"""A trained model, and what a caller does with it: sample (at random or by beam
search), check samples for copying, score, analyse, look at single units and at
how far the gradient reaches; describe a model file or run."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import GRADIENT_DISTANCE, SampleConfig
from ..errors import CharRNNError, CorpusError
from .settings import adapt_settings, sample_settings

if TYPE_CHECKING:
    from ..inference.analysis import Activations, TextAnalysis, UnitView
    from ..inference.batching import Batch
    from ..inference.beam import BeamResult
    from ..inference.copycheck import CopyReport
    from ..inference.gradients import GradientDecay
    from ..inference.score import TextScore
    from ..model.modelfile import LoadedModel
    from ..model.network import CharRNN, State
    from ..text.vocab import Vocabulary
    from ..views.runinfo import RunInfo


class Model:
    """A trained model with its vocabulary, ready to sample, score and analyse."""

    def __init__(self, loaded: LoadedModel, context: State | None = None):
        self.loaded = loaded
        # The state after the text this model adapted to (adapt_to): samples and beams
        # go on from it. None: they start as a text starts.
        self.context = context

    @property
    def path(self) -> Path:
        return self.loaded.path

    @property
    def config(self):
        """The ModelConfig: cell, layers, hidden, embedding, output, ..."""
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

    # ------------------------------------------------------------------ sampling
    def known_prime(self, prime: str) -> tuple[str, list[str]]:
        """The prime, normalised as the model reads text, without the characters the
        model has never seen; and those characters."""
        from ..text.vocab import normalize

        unknown = self.vocab.unknown_chars(prime)
        if not unknown:
            return prime, []
        kept = "".join(c for c in normalize(prime, self.vocab.normalization) if c in self.vocab)
        return kept, unknown

    def stream(
        self, prime: str = "", *, threads: int | None = None, **settings
    ) -> Iterator[list[str]]:
        """Per step, the next character of each sample ("" once a sample has stopped);
        the prime is not repeated. `settings` as for `samples`; the prime is checked
        before this returns. `threads`: BLAS threads per step (None: the fastest count,
        timed while sampling)."""
        from ..inference.sample import generate

        settings = sample_settings(**settings)
        return generate(self.loaded, self.vocab, prime, settings, threads, self.context)

    def batch(self) -> Batch:
        """An empty continuous batch of this model's samples (what `charrnn serve` runs):
        `join(prime, settings, exact)` adds a request's samples, `step()` advances all
        of them one character (inference.batching). Settings: `sample_settings(...)`."""
        from ..inference.batching import Batch

        return Batch(self.loaded)

    def samples(
        self, count: int, prime: str = "", *, threads: int | None = None, **settings
    ) -> list[str]:
        """`count` independent samples, each the prime plus what follows it.

        `settings` are SampleConfig's fields (length, temperature, top_k, top_p,
        stop, seed); without a seed each call draws a fresh one.
        """
        pieces = [[prime] for _ in range(count)]
        for chars in self.stream(prime, threads=threads, num_samples=count, **settings):
            for piece, char in zip(pieces, chars):
                piece.append(char)
        return ["".join(piece) for piece in pieces]

    def sample(self, prime: str = "", *, threads: int | None = None, **settings) -> str:
        """One sample: the prime plus what the model writes after it (see `samples`)."""
        return self.samples(1, prime, threads=threads, **settings)[0]

    def beam(
        self,
        prime: str = "",
        width: int = 4,
        *,
        length: int = SampleConfig.length,
        stop: str | None = None,
        threads: int | None = None,
    ) -> BeamResult:
        """The likeliest continuation of `prime` a width-`width` beam search finds (of
        `length` characters, or ending right after `stop`): `.text` (without the prime)
        and `.log_prob` (natural log, given the prime)."""
        from threadpoolctl import threadpool_limits

        from ..inference.beam import beam_search

        with threadpool_limits(limits=threads, user_api="blas"):
            return beam_search(self.loaded, self.vocab, prime, width, length, stop, self.context)

    def training_text(self, corpus: str | Path | None = None) -> str:
        """The corpus to compare samples with: `corpus` when given (it must exist),
        else the training text this model's file records."""
        import os

        from ..bundled import corpus_path

        if corpus:
            if not os.path.exists(corpus):
                raise CorpusError(f"{corpus}: no such corpus file or prepared directory")
            return str(corpus)
        recorded = self.info.get("corpus")
        if not recorded:
            raise CorpusError(
                f"{self.path} does not record its training text; give one: --check-copy CORPUS"
            )
        recorded = corpus_path(recorded)  # the bundled corpus: where it is on this install
        if not os.path.exists(recorded):
            raise CorpusError(
                f"the training text {recorded} is not there; give its path: --check-copy CORPUS"
            )
        return recorded

    def check_copies(
        self, texts: Sequence[str], corpus: str | Path | None = None
    ) -> list[CopyReport]:
        """How much of each text (pass generated text, without the prime) occurs verbatim
        in `corpus` (default: the model's training text): the longest span and the
        share of its windows found."""
        from ..inference.copycheck import check_copies, corpus_chunks

        chunks = corpus_chunks(self.training_text(corpus), self.vocab.normalization)
        return check_copies(list(texts), chunks)

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        text: str | Iterable[str],
        *,
        exact: bool = False,
        strict: bool = False,
        adapt: bool = False,
        **adaptation,
    ) -> TextScore | list[TextScore]:
        """How well the model predicts a text (a str: one TextScore, read as one
        document; `exact`: as one stream, slower) or each of several independent texts
        (a list: one TextScore each). Characters the model has never seen are skipped
        and counted, or with `strict` an UnknownCharactersError.

        `adapt`: with dynamic evaluation, the model learning from each text as it reads
        it (each character scored before any update that has seen it; each text from
        the trained weights; always one stream). `adaptation`: AdaptConfig's
        fields (adapt_rate, adapt_segment, adapt_decay, adapt_beta).
        """
        from ..inference.adapt import score_adapted
        from ..inference.score import score_text, score_texts

        settings = adapt_settings(adapt, **adaptation)
        texts = [text] if isinstance(text, str) else list(text)
        if strict:
            self.check_known("".join(texts))
        if settings is not None:
            scores = score_adapted(self.module, self.vocab, texts, settings)
            return scores[0] if isinstance(text, str) else scores
        if isinstance(text, str):
            return score_text(self.module, self.vocab, text, exact=exact)
        return score_texts(self.module, self.vocab, texts)

    def adapt_to(self, text: str, *, name: str | None = None, **adaptation) -> Model:
        """A copy of this model that has read `text` with dynamic evaluation: its
        weights have learned from the text, and its samples go on from where the text
        ends (a prime follows the text). This model is unchanged. `name` says in the
        copy's info what the text was; `.info["adapted"]` has the nats per character
        it scored while reading. Settings as for `score(adapt=True)`."""
        from ..inference.adapt import adapt_model

        settings = adapt_settings(True, **adaptation)
        loaded, state = adapt_model(self.loaded, text, settings, name)
        return Model(loaded, state)

    def save(self, path: str | Path) -> Path:
        """Write this model (e.g. an adapted one) as a model file at `path`; never over
        the file it was loaded from."""
        from ..model.modelfile import save_model

        path = Path(path)
        if path.exists() and path.resolve() == self.path.resolve():
            raise CharRNNError(f"{path} is the model this one comes from; save it elsewhere")
        save_model(path, self.module, self.vocab, self.info)
        return path

    def check_known(self, text: str) -> None:
        """UnknownCharactersError when `text` has characters the model has never seen."""
        from ..errors import UnknownCharactersError

        unknown = self.vocab.unknown_chars(text)
        if unknown:
            raise UnknownCharactersError(unknown)

    def analyze(
        self, text: str, top_k: int = 5, *, adapt: bool = False, **adaptation
    ) -> TextAnalysis:
        """Per character: its probability, surprisal and the top_k likeliest alternatives
        (`adapt`: as the model predicted it while adapting, as in `score`)."""
        from ..inference.analysis import analyze_text

        settings = adapt_settings(adapt, **adaptation)
        return analyze_text(self.module, self.vocab, text, top_k=top_k, adapt=settings)

    # ------------------------------------------------------------------ looking inside
    def activations(
        self, text: str, layer: int = -1, *, adapt: bool = False, **adaptation
    ) -> Activations:
        """Hidden state (and cell state, gates) of one layer after each character
        (`adapt`: with the weights changing as in `score(adapt=True)`)."""
        from ..inference.analysis import record_activations

        settings = adapt_settings(adapt, **adaptation)
        return record_activations(self.module, self.vocab, text, layer, settings)

    def states(self, spec: str | Sequence[str] = "h") -> tuple[str, ...]:
        """The recorded states named by `spec`: "h", "c" (LSTM), "gates" or gate letters
        (i,f,g,o for LSTM; r,z,n for GRU), comma-separated or as a sequence."""
        from ..inference.analysis import parse_states

        return parse_states(spec, self.config.cell)

    def units(
        self,
        text: str,
        *,
        layer: int = -1,
        states: str | Sequence[str] = "h",
        units: Sequence[int] | None = None,
        find: str | None = None,
        count: int = 10,
        adapt: bool = False,
        **adaptation,
    ) -> UnitView:
        """Which units of one layer to show for `text`: the `units` named, else the best
        matches of the feature `find` ("quotes", "brackets", "line-position"; `count`
        of them listed), else those of the feature the text shows most clearly, else
        the most active units (inference.analysis.choose_units). `adapt`: read with
        dynamic evaluation, as `activations`."""
        from ..inference.analysis import choose_units

        chosen = self.states(states)
        recorded = self.activations(text, layer, adapt=adapt, **adaptation)
        return choose_units(recorded, chosen, list(units or []), find, count)

    def gradient_decay(
        self, text: str | None = None, distance: int | None = None, layer: int = -1
    ) -> GradientDecay:
        """How far back the gradient of the loss reaches: the mean norm of
        d loss_t / d h_{t-k} (and c_{t-k} for LSTM) of one layer, for k = 1..distance
        (default 100, or as far as the text allows). Without a text, a passage of the
        model's training text."""
        from ..inference.gradients import gradient_decay

        if text is None:
            text, _ = self.training_passage()
        return gradient_decay(self.module, self.vocab, text, distance, layer)

    def training_passage(self) -> tuple[str, str]:
        """A passage of the model's training text, and where it comes from."""
        from ..inference.gradients import model_passage

        return model_passage(self.loaded)


def total(scores: Sequence[TextScore]) -> TextScore:
    """The score of several texts together (their sums)."""
    from ..inference.score import total as add_up

    return add_up(list(scores))


def compare_gradients(
    models: Sequence[Model], text: str, distance: int | None = None, layer: int = -1
) -> list[GradientDecay]:
    """gradient_decay of each model over the same `text` and the same distances
    (default GRADIENT_DISTANCE, or as far as the text allows every model)."""
    from ..inference.gradients import farthest_distance

    reach = min(farthest_distance(m.vocab, text) for m in models)
    if distance is None and reach >= 1:
        distance = min(GRADIENT_DISTANCE, reach)
    curves = []
    for model in models:
        try:
            curves.append(model.gradient_decay(text, distance, layer))
        except CharRNNError as exc:
            raise CharRNNError(f"{model.path}: {exc}" if len(models) > 1 else str(exc)) from None
    return curves


def describe(path: str | Path | None = None) -> RunInfo:
    """What `charrnn info` shows of a model file or run directory (None: the bundled
    model): its settings, vocabulary, parameters, and the run's history."""
    from ..bundled import bundled_model
    from ..training.rundir import read_run
    from ..views.runinfo import RunInfo

    return RunInfo(*read_run(path or bundled_model()))


def load(path: str | Path | None = None) -> Model:
    """A model file, or a run directory's best model; None: the bundled Shakespeare model."""
    from ..bundled import bundled_model
    from ..model.modelfile import load_model

    return Model(load_model(path if path is not None else bundled_model()))
