"""How scores are written out: one formatter per output shape (a table row, a
one-line summary, label/value pairs for report tables, a loss in nats and bits, the
figures of gradient decay).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..inference.gradients import GradientDecay
    from ..inference.score import TextScore

SCORE_HEADER = (
    f"{'bits/char':>9} {'nats/char':>9} {'perplexity':>10} {'chars':>8} {'log-prob':>11}  text"
)


def score_row(score: TextScore, label: str) -> str:
    """One row under SCORE_HEADER; a text with no character scored has no per-character
    figures ("-"), rather than NaN."""
    if not score.chars:
        return f"{'-':>9} {'-':>9} {'-':>10} {0:8d} {score.log_prob:11.2f}  {label}"
    return (
        f"{score.bits_per_char:9.4f} {score.nats_per_char:9.4f} {score.perplexity:10.3f} "
        f"{score.chars:8d} {score.log_prob:11.2f}  {label}"
    )


def score_line(score: TextScore) -> str:
    """One line: bits and nats per character, perplexity, characters (and unknown ones)."""
    if not score.chars:
        return "no character scored"
    line = (
        f"{score.bits_per_char:.4f} bits/char, {score.nats_per_char:.4f} nats/char, "
        f"perplexity {score.perplexity:.3f}, {score.chars} characters"
    )
    if score.unknown_chars:
        line += f" ({score.unknown_chars} unknown skipped)"
    return line


def score_pairs(score: TextScore) -> list[tuple[str, str]]:
    """(label, value) rows for a report's table."""
    rows = [("characters scored", f"{score.chars:,}")]
    if score.chars:
        rows += [
            ("bits/char", f"{score.bits_per_char:.4f}"),
            ("nats/char", f"{score.nats_per_char:.4f}"),
            ("perplexity", f"{score.perplexity:.3f}"),
            ("log-probability", f"{score.log_prob:.2f}"),
        ]
    rows.append(("unknown characters skipped", str(score.unknown_chars)))
    return rows


def nats_and_bits(nats: float) -> str:
    """A loss per character, e.g. '1.4392 nats/char (2.0763 bits/char)'."""
    return f"{nats:.4f} nats/char ({nats / math.log(2):.4f} bits/char)"


def decay_rows(curves: list[tuple[str, GradientDecay]]) -> tuple[list[str], list[list[str]]]:
    """The figures of gradient decay, a row per model and state (header, rows): its cell,
    the layer followed, the mean norm at k = 1 and at k = K, the first k where it is below
    DECAY_RATIO of its k = 1 value, and the factor per step back (DECAY_NOTE)."""
    from ..inference.gradients import DECAY_RATIO

    distance = max(decay.distance for _, decay in curves)
    header = [
        "model",
        "cell",
        "layer",
        "state",
        "k = 1",
        f"k = {distance}",
        f"< {DECAY_RATIO:g} at k",
        "x per step",
    ]
    rows = []
    for label, decay in curves:
        for state, values in decay.norms.items():
            below, factor = decay.falls_below(state), decay.factor_per_step(state)
            rows.append(
                [
                    label,
                    decay.cell,
                    str(decay.layer),
                    state,
                    f"{values[0]:.3g}",
                    f"{values[-1]:.3g}",
                    "-" if below is None else f"{below:,}",
                    "-" if factor is None else f"{factor:.3f}",
                ]
            )
    return header, rows


DECAY_NOTE = (
    "layer: the one whose state is followed; k = 1, k = K: the mean norm there; "
    "< r at k: the first k where it is below r times its value at k = 1 (- : not within K); "
    "x per step: the factor it changes by per step back (fitted to log norm over k)"
)


def share_text(share: float | None) -> str:
    """A share as a percentage that never rounds a non-zero share to nothing: 12.5%,
    0.04% (4 steps in 10,000), 0%; "-" for None."""
    if share is None:
        return "-"
    percent = 100 * share
    if percent == 0 or percent >= 1:
        return f"{percent:.1f}%".replace(".0%", "%")
    return f"{percent:.2g}%"
