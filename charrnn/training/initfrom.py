"""Starting a run from a trained model (`--init-from`): the model's architecture, its
weights carried over to the vocabulary union row by row, and the record of where the
run started. The policy of when this happens is session.py's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..config import ModelConfig
from ..errors import CharRNNError
from ..model.layout import EMBEDDING, ORDER, cluster_weights, head_weights
from ..model.modelfile import LoadedModel, load_model, resolve_model_path
from ..text.vocab import Vocabulary

# The ModelConfig fields a model fixes; the rest (dropout) a fine-tuning run may set.
ARCHITECTURE = ("cell", "layers", "hidden", "embedding", "output", "cutoffs")


@dataclass(frozen=True)
class InitModel:
    """A model to start a run from, and the facts of it a run records."""

    loaded: LoadedModel
    sha256: str

    @property
    def path(self) -> Path:
        return self.loaded.path

    def describe(self) -> str:
        c = self.loaded.config
        return f"{c.cell} {c.layers}x{c.hidden}, {len(self.loaded.vocab)} characters"

    def record(self) -> dict:
        """What a run started from it stores in its model files and states: the file, its
        hash, and what that model itself records of its training (corpus, step, its own start)."""
        info = self.loaded.info
        own = {key: info[key] for key in ("corpus", "step", "val_nats", "init_from") if key in info}
        return {"path": str(self.path.resolve()), "sha256": self.sha256, **own}


def load_init_model(path: str | Path) -> InitModel:
    """The model named by `path`: a model file, a run directory (its best model) or a
    bundled model's short name, as `--model` takes them (modelfile.resolve_model_path)."""
    loaded = load_model(resolve_model_path(path))
    digest = hashlib.sha256()
    with open(loaded.path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return InitModel(loaded, digest.hexdigest())


def check_architecture(source: InitModel, settings: dict) -> None:
    """Refuse model settings that contradict the model's architecture; equal ones and
    `output` "auto" (decide for me) are accepted."""
    config = source.loaded.config
    for name in ARCHITECTURE:
        given = settings.get(name)
        if given is None or (name == "output" and given == "auto"):
            continue
        ours = getattr(config, name)
        if (tuple(given) if name == "cutoffs" else given) != ours:
            option = "--" + name.replace("_", "-")
            raise CharRNNError(
                f"{option} {given} contradicts the model to start from ({source.path}: "
                f"{name} {ours}); --init-from takes the architecture from the model: drop {option}"
            )


def fine_tuned_config(source: InitModel, vocab: Vocabulary, dropout: float) -> ModelConfig:
    """The model's config on the vocabulary union `vocab`, with `dropout`. An adaptive
    output layer keeps its cutoffs: new characters join its last cluster."""
    return replace(source.loaded.config, vocab_size=len(vocab), dropout=dropout)


def carried_weights(source: InitModel, vocab: Vocabulary) -> dict[str, torch.Tensor]:
    """The state_dict of a CharRNN(fine_tuned_config(source, vocab, ...)): the model's
    weights, every old character's rows moved to its id in `vocab` (a superset of the
    model's vocabulary), the new characters' rows fresh.

    Vocabulary ids are code-point order (Vocabulary requires it: the ASCII fast path
    and a stable id for each set of characters rely on it), so the union interleaves
    new characters with old ones and the rows are permuted rather than appended.
    A new character's embedding and output weight row are the mean of the old rows,
    and its output bias the mean of the old biases: its logit is then the mean of the
    old characters' logits at every position, so its probability starts small (the
    geometric mean of the others', renormalised; 2e-5 on average on psalms' text with
    the bundled model) but never negligible at the scale of a gradient step.
    """
    old = source.loaded.vocab
    weights = source.loaded.weights
    moved = np.array([vocab.id_of(c) for c in old.chars])  # (V_old,) old id -> new id
    fresh = np.setdiff1d(np.arange(len(vocab)), moved)  # new ids of the new characters

    def by_id(rows: np.ndarray) -> np.ndarray:
        """(V_old, ...) rows in old-id order -> (V, ...) in new-id order, new rows the mean."""
        out = np.empty((len(vocab), *rows.shape[1:]), dtype=rows.dtype)
        out[moved] = rows
        out[fresh] = rows.mean(axis=0)
        return out

    state = dict(weights)
    state[EMBEDDING] = by_id(weights[EMBEDDING])
    if source.loaded.config.output == "softmax":
        for name in head_weights(source.loaded.config):
            state[name] = by_id(weights[name])
    else:
        # The head's rows are frequency ranks and clusters, not ids: unchanged. The new
        # characters take the last ranks, at the end of the last tail cluster, whose
        # output rows (within-cluster logits, no bias) grow by the mean row.
        _, last = cluster_weights(len(source.loaded.config.cutoffs) - 1)
        rows = weights[last]
        state[last] = np.concatenate(
            [rows, np.repeat(rows.mean(axis=0, keepdims=True), len(fresh), 0)]
        )
        state[ORDER] = np.concatenate([moved[weights[ORDER]], fresh]).astype(np.int64)
    return {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()}
