"""The training batches: the training text as contiguous streams read side by side."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import CharRNNError


def check_length(chars: int, batch_size: int, seq_len: int) -> None:
    """Refuse a training text too short for one batch of `batch_size` x `seq_len`."""
    if (chars - 1) // batch_size < seq_len:
        need = batch_size * seq_len + 1
        raise CharRNNError(
            f"training text too short: {chars} characters; batch size {batch_size} "
            f"x sequence length {seq_len} needs at least {need}"
        )


class BatchStreams:
    """`batch_size` contiguous streams over the training ids, read seq_len at a time.

    ids = [a b c d e f g h i j k l]; batch_size 2, seq_len 3:
        stream 0: a b c | d e f        inputs  x[:, t:t+3]
        stream 1: g h i | j k l        targets y[:, t:t+3] (shifted by one)
    When a stream runs out the next epoch starts and the state is reset.
    `rows` picks some of the streams (one process's share under DDP); the
    layout, and so the position and epoch, stay those of all `batch_size`.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int, rows: slice = slice(None)):
        check_length(len(ids), batch_size, seq_len)
        self.length = (len(ids) - 1) // batch_size  # characters per stream
        span = self.length * batch_size
        # (B, length) views into the memmap, then this process's rows
        self.inputs = ids[:span].reshape(batch_size, self.length)[rows]
        self.targets = ids[1 : span + 1].reshape(batch_size, self.length)[rows]
        self.seq_len = seq_len
        self.position = 0
        self.epoch = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(inputs, targets) each (B, T) int64, and whether a new epoch began."""
        new_epoch = self.position + self.seq_len > self.length
        if new_epoch:
            self.position, self.epoch = 0, self.epoch + 1
        window = slice(self.position, self.position + self.seq_len)
        self.position += self.seq_len
        x = torch.from_numpy(self.inputs[:, window].astype(np.int64))
        y = torch.from_numpy(self.targets[:, window].astype(np.int64))
        return x, y, new_epoch
