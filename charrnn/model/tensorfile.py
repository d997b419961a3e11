"""Safetensors files read defensively: the header is checked against the file before
any tensor is read, then the tensors are mapped from it (never read whole, never twice).

A safetensors file is a u64 little-endian header length, a JSON header (every
tensor's dtype, shape and byte range, plus string metadata), then the tensors'
bytes. Everything here costs only the header's size; a file that a header
lies about is one ModelFileError line, before anything is allocated for it.
No torch here: model files load without it.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFileError

MAX_HEADER_BYTES = 16 << 20  # a 1.1M-character vocabulary needs ~12 MiB; garbage gets no more
MAX_DIMS = 8  # charrnn's tensors have at most 2; a few more cost nothing to allow
# Bytes per element of each safetensors dtype (safetensors' own names).
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "F64": 8,
    "I64": 8,
    "U64": 8,
}


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header lists it: dtype, shape and byte range in the data."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class TensorFile:
    """A safetensors file whose header was checked: every tensor's bytes lie in the
    file, match its dtype and shape, and together cover the data exactly."""

    path: Path
    metadata: dict[str, str]
    entries: dict[str, TensorEntry]

    def read(self, framework: str = "numpy", names=None) -> dict:
        """The tensors `names` (default: all) as numpy arrays ("numpy") or torch
        tensors ("pt"), each copied once out of the mapped file."""
        from safetensors import safe_open

        names = list(self.entries) if names is None else list(names)
        try:
            with safe_open(self.path, framework=framework) as handle:
                return {name: handle.get_tensor(name) for name in names}
        except OSError as exc:
            raise ModelFileError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        except Exception as exc:  # safetensors' own error type: the file changed since
            raise ModelFileError(f"{self.path}: damaged file ({exc})") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(name: str, raw, damaged) -> TensorEntry:
    """One header entry, checked on its own (its place in the data: read_header)."""
    if not isinstance(raw, dict) or set(raw) != {"dtype", "shape", "data_offsets"}:
        raise damaged(f"tensor {name!r} is not described by dtype, shape and data_offsets")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise damaged(f"tensor {name!r} has unknown dtype {dtype!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(_is_int(n) and n >= 0 for n in shape)
    ):
        raise damaged(f"tensor {name!r} has an impossible shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(n) for n in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise damaged(f"tensor {name!r} has impossible data offsets {offsets!r}")
    begin, end = offsets
    if end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise damaged(
            f"tensor {name!r} ({dtype} {list(shape)}) does not fill its {end - begin} bytes"
        )
    return TensorEntry(dtype, tuple(shape), begin, end)


def read_header(path: str | Path, fmt: str, versions: tuple[int, ...], what: str) -> TensorFile:
    """The checked header of `path`, a safetensors file holding a charrnn `what` (a
    "model" or "training state") of format `fmt`, in one of `versions`.

    Reads only the header. Anything that is not such a file (a pickle, random bytes,
    a truncated file, trailing garbage, a header whose sizes or offsets do not fit
    the file) is one ModelFileError line naming the file.
    """
    path = Path(path)

    def damaged(reason: str) -> ModelFileError:
        return ModelFileError(f"{path}: damaged {what} file ({reason})")

    try:
        with path.open("rb") as handle:
            size = path.stat().st_size
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise ModelFileError(f"{path}: not a charrnn file (too short)")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise ModelFileError(f"{path}: not a charrnn file (no safetensors header)")
            text = handle.read(length)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ModelFileError(f"{path}: not a charrnn file (bad header)") from None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or metadata.get("format") != fmt:
        raise ModelFileError(f"{path}: a safetensors file, but not a charrnn {what}")
    if metadata.get("version") not in [str(v) for v in versions]:
        readable = " or ".join(str(v) for v in versions)
        raise ModelFileError(
            f"{path}: file version {metadata.get('version')!r}; "
            f"this charrnn reads version {readable}"
        )
    if not all(isinstance(v, str) for v in metadata.values()):
        raise damaged("metadata values must be strings")
    entries = {
        name: _entry(name, raw, damaged) for name, raw in header.items() if name != "__metadata__"
    }
    # The tensors' bytes follow each other from the end of the header to the end of
    # the file, with no gap, overlap or excess (what safetensors itself requires).
    data_bytes, position = size - 8 - length, 0
    for name, entry in sorted(entries.items(), key=lambda item: item[1].begin):
        if entry.begin != position:
            raise damaged(f"tensor {name!r} starts at byte {entry.begin}, not {position}")
        position = entry.end
    if position != data_bytes:
        raise damaged(f"the tensors take {position} bytes, the file holds {data_bytes}")
    return TensorFile(path, metadata, entries)
