"""Dynamic evaluation: a model that keeps learning from the text it reads (Krause et
al., 2018).

The text is read left to right in segments of `segment` characters. Each segment is
first predicted with the weights as they are, and only then does one update step on
that segment's mean loss move the weights; the state is carried from segment to
segment. So each character's probability is computed before any update that has seen
it, and the figures are a fair score of the text.

The update is RMS-normalised, as in the paper: each weight moves by
rate * gradient / sqrt(mean square of its gradients so far) (the mean square is the
text's own, with a bias correction, as Adam's second moment), then back towards its
trained value by `decay` times its distance from it, so that a long text cannot
carry the weights far from what training learned.

The trained model is never changed: a `Reader` works on a float32 copy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from ..config import ADAPT_RATE, ADAPT_RATE_OUTPUT, AdaptConfig
from ..model.modelfile import LoadedModel
from ..model.network import CharRNN, State, detach_state
from ..text.vocab import Vocabulary
from .score import TextScore

# Added to the root mean square before dividing: a weight whose gradients have all
# been zero (the embedding of a character the text has not had) does not move.
EPSILON = 1e-8


@dataclass
class AdaptedText:
    """What reading one text with dynamic evaluation gives."""

    log_probs: np.ndarray  # (N,) float64 log p of each scored character, in order
    model: CharRNN  # the adapted copy, after the last segment's update
    state: State  # the state after the last character
    unknown_chars: int = 0

    def score(self) -> TextScore:
        return TextScore(len(self.log_probs), float(-self.log_probs.sum()), self.unknown_chars)


def resolved(settings: AdaptConfig | None = None) -> AdaptConfig:
    """`settings` with its rate decided: the one given, else the one measured best for
    what adapts (all the weights, or only the output layer)."""
    settings = settings or AdaptConfig()
    if settings.adapt_rate is not None:
        return settings
    rate = ADAPT_RATE_OUTPUT if settings.adapt_scope == "output" else ADAPT_RATE
    return replace(settings, adapt_rate=rate)


class Reader:
    """Reads texts with dynamic evaluation, each from the trained weights (`reset`)."""

    def __init__(self, model: CharRNN, settings: AdaptConfig | None = None):
        self.settings = resolved(settings)
        self.model = copy.deepcopy(model).float().eval()  # eval: no dropout while reading
        adapted = self.model.head if self.settings.adapt_scope == "output" else self.model
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.params = list(adapted.parameters())
        for p in self.params:
            p.requires_grad_(True)
        self.trained = [p.detach().clone() for p in self.params]
        self.square = [torch.zeros_like(p) for p in self.params]
        self.updates = 0

    def reset(self) -> None:
        """Back to the trained weights, with no gradient history."""
        with torch.no_grad():
            for p, p0, sq in zip(self.params, self.trained, self.square):
                p.copy_(p0)
                sq.zero_()
        self.updates = 0

    @torch.no_grad()
    def _update(self) -> None:
        """One step on the gradients in .grad: the mean square, the RMS-normalised
        move, the pull back; torch's multi-tensor ops, a few calls for all the weights."""
        s = self.settings
        self.updates += 1
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in self.params]
        torch._foreach_mul_(self.square, s.adapt_beta)
        torch._foreach_addcmul_(self.square, grads, grads, value=1 - s.adapt_beta)
        # sqrt(mean square / bias correction) + epsilon
        root = torch._foreach_div(self.square, 1 - s.adapt_beta**self.updates)
        torch._foreach_sqrt_(root)
        torch._foreach_add_(root, EPSILON)
        torch._foreach_addcdiv_(self.params, grads, root, value=-s.adapt_rate)
        if s.adapt_decay:
            gap = torch._foreach_sub(self.trained, self.params)
            torch._foreach_add_(self.params, gap, alpha=s.adapt_decay)
        for p in self.params:
            p.grad = None

    def read_ids(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        state: State | None = None,
        on_segment: Callable[[int, int, Tensor | None], None] | None = None,
        full: bool = False,
    ) -> tuple[np.ndarray, State | None]:
        """Predict targets[t] from inputs[..t] for every t, updating after each segment.

        inputs, targets (N,) ids. Returns log p of each target (N,) float64 and the
        state after the last input. `on_segment(start, end, log_probs)` is called for
        each segment inputs[start:end] after it is predicted and before the update,
        while `self.model` holds the weights that predicted it; `log_probs` is the
        full log-distribution (T, V) float64 with `full`, else None.
        """
        out = np.zeros(len(targets))
        inputs_t = torch.from_numpy(np.asarray(inputs, dtype=np.int64))[None]  # (1, N)
        targets_t = torch.from_numpy(np.asarray(targets, dtype=np.int64))[None]
        segment = self.settings.adapt_segment
        for start in range(0, len(targets), segment):
            end = min(start + segment, len(targets))
            ids, wanted = inputs_t[:, start:end], targets_t[:, start:end]  # (1, T)
            distribution = None
            # Only the output layer adapting: no gradient through the recurrence.
            with torch.set_grad_enabled(self.settings.adapt_scope == "all"):
                h, next_state = self.model.features(ids, state)  # (1, T, H)
            with torch.enable_grad():
                if full:
                    every = self.model.head.log_probs(h)  # (1, T, V)
                    log_p = every.gather(2, wanted[..., None])[..., 0]  # (1, T)
                    # float64, as static analysis normalises: rate 0 gives its figures
                    distribution = F.log_softmax(every[0].detach().double(), dim=-1)
                else:
                    log_p = self.model.head.target_log_probs(h, wanted)  # (1, T)
                loss = -log_p.mean()
            out[start:end] = log_p.detach()[0].double().numpy()
            if on_segment is not None:
                on_segment(start, end, distribution)
            if self.settings.adapt_rate:
                loss.backward()
                self._update()
            state = detach_state(next_state)
        return out, state


def read_text(
    model: CharRNN,
    vocab: Vocabulary,
    text: str,
    settings: AdaptConfig | None = None,
    reader: Reader | None = None,
) -> AdaptedText:
    """Read `text` as one document with dynamic evaluation, from the trained weights
    (a fresh `Reader`, or `reader` reset). Unknown characters are dropped and counted,
    as in static scoring; the text is read after the vocabulary's start id."""
    reader = reader or Reader(model, settings)
    reader.reset()
    ids, unknown = vocab.encode_known(text)
    inputs, targets = vocab.inputs_and_targets(ids)
    log_probs, state = reader.read_ids(inputs, targets)
    return AdaptedText(log_probs, reader.model, state, unknown)


def score_adapted(
    model: CharRNN, vocab: Vocabulary, texts: list[str], settings: AdaptConfig | None = None
) -> list[TextScore]:
    """Each text scored with dynamic evaluation, each from the trained weights."""
    reader = Reader(model, settings)
    return [read_text(model, vocab, text, reader=reader).score() for text in texts]


def adapt_model(
    loaded: LoadedModel, text: str, settings: AdaptConfig | None = None, name: str | None = None
) -> tuple[LoadedModel, State | None]:
    """`loaded` after reading `text` with dynamic evaluation: a new LoadedModel with the
    adapted weights (its info records what it read and how well it predicted it) and
    the state after the text's last character. `loaded` is unchanged."""
    settings = resolved(settings)
    adapted = read_text(loaded.model, loaded.vocab, text, settings)
    weights = {k: v.detach().numpy().copy() for k, v in adapted.model.state_dict().items()}
    reading = adapted.score()
    info = dict(loaded.info)
    info["adapted"] = {
        "text": name,
        "chars": reading.chars,
        "nats_per_char": reading.nats_per_char if reading.chars else None,
        "settings": asdict(settings),
    }
    return replace(loaded, info=info, weights=weights), adapted.state
