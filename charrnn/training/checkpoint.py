"""Training states: capturing everything needed to continue a run exactly where it
stopped, restoring it, and encoding it as a file.

One safetensors file per state (its place in the run: rundir.py):
tensors for the weights, the optimizer moments, the carried hidden state and
the torch/numpy RNG states; JSON metadata for the configs, the vocabulary,
the loop's bookkeeping, the optimizer's settings and the Python RNG state.
Nothing is pickled, and files are written atomically (see atomic.py).
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import save as st_save

from ..atomic import atomic_write_bytes
from ..config import ModelConfig, TrainConfig
from ..errors import CharRNNError, ModelFileError
from ..model.layout import ORDER, weight_shapes
from ..model.modelfile import check_finite, check_tensors, config_from_fields
from ..model.network import select_state, state_parts
from ..model.tensorfile import read_header
from ..text.corpus import PreparedCorpus, load_prepared
from .schedule import LoopState

if TYPE_CHECKING:
    from .runtime import ProcessGroup

FORMAT = "charrnn-train-state"
# Version 2: the model config has `output` and `cutoffs`, and an adaptive head's
# `model.head.order`. Version 1 states (a full softmax) still resume.
VERSION = 2
READABLE = (1, 2)
_OPTIM_NAME = re.compile(r"^optim\.(\d+)\.(step|exp_avg|exp_avg_sq)$")
_RNG_NAME = re.compile(r"^rng\.(torch|torch\.rank[1-9]\d*|cuda\.rank\d+)$")


@dataclass
class TrainingState:
    """A decoded state file. `meta` holds the JSON parts, `tensors` the rest."""

    meta: dict
    tensors: dict[str, torch.Tensor]
    path: Path | None = None

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors whose names start with `prefix.`, with the prefix removed."""
        cut = len(prefix) + 1
        return {k[cut:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}


def capture_rng() -> tuple[dict, dict[str, torch.Tensor]]:
    """Every RNG state: (JSON part, tensor part)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
    }
    tensors = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
    }
    return meta, tensors


def restore_rng(state: TrainingState) -> None:
    version, internal, gauss = state.meta["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, pos, has_gauss, cached = state.meta["rng"]["numpy"]
    keys = state.tensors["rng.numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, pos, has_gauss, cached))
    torch.set_rng_state(state.tensors["rng.torch"])


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[list, dict]:
    """(param_groups as JSON, per-parameter state as named tensors)."""
    state_dict = optimizer.state_dict()
    tensors = {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu()
    return state_dict["param_groups"], tensors


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, state: TrainingState) -> None:
    per_param: dict[int, dict] = {}
    for name, value in state.group("optim").items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value.clone()
    optimizer.load_state_dict({"state": per_param, "param_groups": state.meta["optim_groups"]})


def capture(
    meta: dict,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    hidden,
    group: ProcessGroup,
    device: torch.device,
) -> tuple[dict, dict[str, torch.Tensor]]:
    """(JSON metadata, named tensors) of a complete training state: `meta` (the run's
    own JSON: configs, loop bookkeeping, ...) plus the weights, optimizer, gradient
    scaler, RNGs and the carried recurrent state `hidden`.

    Under DDP every rank must call it (it gathers): the carried state of all ranks,
    joined in the one-process layout (L, B, H), and each rank's RNGs.
    """
    rng_meta, rng_tensors = capture_rng()
    groups, optim_tensors = optimizer_to_tensors(optimizer)
    meta = {**meta, "optim_groups": groups, "rng": rng_meta}
    if scaler.is_enabled():
        meta["grad_scaler"] = scaler.state_dict()
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(optim_tensors)
    tensors.update(rng_tensors)
    for rank, value in enumerate(group.gather(torch.get_rng_state())[1:], start=1):
        tensors[f"rng.torch.rank{rank}"] = value
    if device.type == "cuda":
        for rank, value in enumerate(group.gather(torch.cuda.get_rng_state())):
            tensors[f"rng.cuda.rank{rank}"] = value
    if hidden is not None:  # float32 whatever the precision (network.float32_state)
        for i, h in enumerate(state_parts(hidden)):
            tensors[f"hidden.{i}"] = torch.cat(group.gather(h), dim=1)
    return meta, tensors


def restore(
    state: TrainingState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    group: ProcessGroup,
    device: torch.device,
    rows: slice,
    seed: int,
):
    """Put `state` back into the model, optimizer, scaler and RNGs; return this rank's
    carried recurrent state (on `device`; None at the start of an epoch).

    The state may come from another number of processes: the carried state is
    stored for all B streams, and each rank takes its `rows`.
    """
    rank = group.rank
    model.load_state_dict(state.group("model"))
    optimizer_from_tensors(optimizer, state)
    if scaler.is_enabled() and "grad_scaler" in state.meta:
        scaler.load_state_dict(state.meta["grad_scaler"])
    restore_rng(state)
    if rank > 0:
        own = state.tensors.get(f"rng.torch.rank{rank}")
        if own is not None:
            torch.set_rng_state(own)
        else:  # a state from fewer processes: fresh dropout masks for this rank
            torch.manual_seed(seed + rank + 7919 * state.meta["loop"]["step"])
    cuda_rng = state.tensors.get(f"rng.cuda.rank{rank}")
    if device.type == "cuda" and cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng)
    stored = [state.tensors[f"hidden.{i}"] for i in range(2) if f"hidden.{i}" in state.tensors]
    if not stored:
        return None
    full = tuple(stored) if len(stored) == 2 else stored[0]
    if group.distributed:
        full = select_state(full, rows)
    parts = tuple(h.to(device).contiguous() for h in state_parts(full))
    return parts if len(parts) == 2 else parts[0]


def prepared_corpus(state: TrainingState) -> PreparedCorpus:
    """The prepared corpus `state` was trained on, as it was: refused in one line when
    it is gone, or changed since (its fingerprint, or for older states its vocabulary,
    differs), so that a resume never trains on other data without saying so."""
    directory = Path(state.meta["corpus_dir"])
    step = state.meta["loop"].get("step", 0)
    if not (directory / "meta.json").is_file() or not (directory / "ids.npy").is_file():
        raise CharRNNError(
            f"{directory}: the run's prepared corpus is gone (deleted or moved); "
            "resuming needs the text it was trained on"
        )
    corpus = load_prepared(directory)
    recorded = state.meta.get("corpus_sha256")
    if list(corpus.vocab.chars) != state.meta["vocab"] or (
        recorded is not None and recorded != corpus.fingerprint
    ):
        raise CharRNNError(
            f"{directory}: the prepared corpus changed since the run's state at step {step} "
            "was saved; resuming would train on other data (start a new run instead)"
        )
    return corpus


def save_state(path: Path, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    """Write a state file atomically; refuse non-finite weights."""
    for name, value in tensors.items():
        if name.startswith("model.") and not torch.isfinite(value).all():
            raise CharRNNError(f"refusing to save a state with non-finite weights ({name})")
    metadata = {
        "format": FORMAT,
        "version": str(VERSION),
        "state": json.dumps(meta, ensure_ascii=False),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def _typed(cls, values, path: Path, name: str):
    """`cls(**values)` for a dataclass of plain fields, each of its default's type (a
    float field takes an int), or where the default is None, None or the field's
    declared kind (a float without one), else one line."""

    def damaged(reason: str) -> ModelFileError:
        return ModelFileError(f"{path}: damaged training state file ({name}: {reason})")

    if not isinstance(values, dict):
        raise damaged("not an object")
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise damaged(f"unknown field {key!r}"[:80])
        default = known[key].default
        kinds = (int, float) if isinstance(default, float) else (type(default),)
        if default is None:  # a setting decided at the start (its kind), or a loss
            kinds = (known[key].metadata.get("kind") or float, type(None))
            kinds = (int, *kinds) if float in kinds else kinds
        if not isinstance(value, kinds) or (isinstance(value, bool) != isinstance(default, bool)):
            raise damaged(f"{key} is {type(value).__name__}")
    try:
        return cls(**values)
    except (CharRNNError, TypeError, ValueError) as exc:
        raise damaged(str(exc)) from None


def _check_optimizer(groups, shapes: list[tuple[int, ...]], entries, path: Path) -> None:
    """AdamW's one parameter group over the model's parameters, and per parameter
    either no moments yet (a state saved before the first step) or step, exp_avg and
    exp_avg_sq of the parameter's shape."""
    damaged = f"{path}: damaged training state file"
    if (
        not isinstance(groups, list)
        or not all(isinstance(g, dict) for g in groups)
        or [g.get("params") for g in groups] != [list(range(len(shapes)))]
    ):
        raise ModelFileError(f"{damaged} (optimizer groups do not fit the model)")
    for key in ("lr", "eps", "weight_decay", "initial_lr"):
        value = groups[0].get(key, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ModelFileError(f"{damaged} (optimizer {key} is {type(value).__name__})")
    found: dict[int, set[str]] = {}
    for name, entry in entries.items():
        match = _OPTIM_NAME.match(name)
        if name.startswith("optim.") and not match:
            raise ModelFileError(f"{damaged} (unexpected tensor {name})"[:200])
        if not match:
            continue
        index, key = int(match.group(1)), match.group(2)
        if index >= len(shapes):
            raise ModelFileError(f"{damaged} (tensor {name} has no parameter)")
        shape = () if key == "step" else shapes[index]
        if entry.shape != shape or entry.dtype != "F32":
            raise ModelFileError(f"{damaged} (tensor {name} does not fit its parameter)")
        found.setdefault(index, set()).add(key)
    if any(keys != {"step", "exp_avg", "exp_avg_sq"} for keys in found.values()):
        raise ModelFileError(f"{damaged} (optimizer moments incomplete)")


def _check_state_tensors(
    meta: dict, config: ModelConfig, train: TrainConfig, entries, path: Path
) -> None:
    """The tensors a state of this config must hold, checked from the header alone."""
    damaged = f"{path}: damaged training state file"
    expected = weight_shapes(config)
    check_tensors(entries, expected, path, prefix="model.")
    params = [shape for name, shape in expected.items() if name != ORDER]
    _check_optimizer(meta["optim_groups"], params, entries, path)
    carried = (config.layers, train.batch_size, config.hidden)  # all ranks' streams
    parts = [f"hidden.{i}" for i in range(2 if config.cell == "lstm" else 1)]
    present = [name for name in parts if name in entries]
    if present and present != parts:
        raise ModelFileError(f"{damaged} (carried state incomplete)")
    for name, entry in entries.items():
        if name.startswith(("model.", "optim.")):
            continue
        if name in parts:
            fits = entry.shape == carried and entry.dtype == "F32"
        elif name == "rng.numpy_keys":
            fits = entry.shape == (624,) and entry.dtype == "I64"
        elif _RNG_NAME.match(name):
            fits = len(entry.shape) == 1 and entry.dtype == "U8"
        else:
            raise ModelFileError(f"{damaged} (unexpected tensor {name})"[:200])
        if not fits:
            raise ModelFileError(f"{damaged} (tensor {name} is {entry.dtype} {list(entry.shape)})")
    for name in ("rng.torch", "rng.numpy_keys"):
        if name not in entries:
            raise ModelFileError(f"{damaged} (no tensor {name})")


def _check_rng(meta: dict, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Set each stored RNG state on a throwaway generator: what would fail on resume
    fails here, as one line."""
    try:
        version, internal, gauss = meta["rng"]["python"]
        random.Random().setstate((version, tuple(internal), gauss))
        kind, pos, has_gauss, cached = meta["rng"]["numpy"]
        keys = tensors["rng.numpy_keys"].numpy().astype(np.uint32)
        np.random.RandomState().set_state((kind, keys, pos, has_gauss, cached))
        for name, value in tensors.items():
            if name.startswith("rng.torch"):
                torch.Generator().set_state(value)
    except Exception:  # any shape, type or value a generator refuses
        raise ModelFileError(f"{path}: damaged training state file (RNG state)") from None


# The JSON parts of a state, each of the type it must have.
META_TYPES = {
    "model_config": dict,
    "train_config": dict,
    "loop": dict,
    "vocab": list,
    "corpus_dir": str,
    "corpus_sha256": (str, type(None)),  # the prepared corpus's fingerprint (older: none)
    "run_id": (str, type(None)),  # the run that wrote it (rundir.py; older: none)
    "optim_groups": list,
    "rng": dict,
}


def load_state(path: Path) -> TrainingState:
    """Read one state file; any damage is a ModelFileError with one line.

    As for model files (modelfile.load_model), everything the header says is checked
    before a tensor is read: the configs, and every tensor's name, shape and dtype
    against the model config. The weights, optimizer moments and carried state read
    must be finite.
    """
    header = read_header(path, FORMAT, READABLE, "training state")
    damaged = f"{path}: damaged training state file"
    if "state" not in header.metadata:
        raise ModelFileError(f"{damaged} (no state)")
    try:
        meta = json.loads(header.metadata["state"])
    except (json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{damaged} (state is not JSON)") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{damaged} (state is not an object)")
    for key, kind in META_TYPES.items():
        if not isinstance(meta.get(key), kind):
            raise ModelFileError(f"{damaged} ({key} missing or of the wrong type)")
    if header.metadata["version"] == "1":
        meta["model_config"].setdefault("output", "softmax")  # always a full softmax
    config = config_from_fields(meta["model_config"], path, "training state")
    train = _typed(TrainConfig, meta["train_config"], path, "train config")
    _typed(LoopState, meta["loop"], path, "loop")
    if (
        not all(isinstance(c, str) for c in meta["vocab"])
        or len(meta["vocab"]) != config.vocab_size
    ):
        raise ModelFileError(f"{damaged} (vocabulary does not fit the model config)")
    _check_state_tensors(meta, config, train, header.entries, path)
    tensors = header.read("pt")
    for name, value in tensors.items():
        if name.startswith(("model.", "optim.", "hidden.")) and value.is_floating_point():
            check_finite(name, value.numpy(), path)
    _check_rng(meta, tensors, path)
    return TrainingState(meta, tensors, path)
