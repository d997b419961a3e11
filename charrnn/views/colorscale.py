"""The colour scales shared by the terminal and HTML renderings (no dependencies).

Surprisal in bits runs from pale green (expected) through yellow and orange to
red (a surprise); activations use a diverging blue - white - red scale.
"""

from __future__ import annotations

import math

SURPRISAL_MAX_BITS = 8.0  # the scale saturates here (1 in 256)
LEGEND_BITS = (0, 1, 2, 3, 4, 6, 8)

_SURPRISAL_STOPS = [  # (bits, rgb)
    (0.0, (232, 245, 233)),
    (1.0, (200, 230, 160)),
    (2.0, (255, 241, 118)),
    (4.0, (255, 183, 77)),
    (6.0, (244, 81, 30)),
    (8.0, (183, 28, 28)),
]
_NEGATIVE = (33, 102, 172)  # blue
_ZERO = (247, 247, 247)
_POSITIVE = (178, 24, 43)  # red

RGB = tuple[int, int, int]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def surprisal_rgb(bits: float) -> RGB | None:
    """The background for a character of this surprisal; None if it was not predicted."""
    if bits is None or math.isnan(bits):
        return None
    bits = min(max(bits, 0.0), SURPRISAL_MAX_BITS)
    for (b0, c0), (b1, c1) in zip(_SURPRISAL_STOPS, _SURPRISAL_STOPS[1:]):
        if bits <= b1:
            return _mix(c0, c1, (bits - b0) / (b1 - b0))
    return _SURPRISAL_STOPS[-1][1]


def activation_rgb(value: float, low: float, high: float) -> RGB:
    """Diverging scale: low blue, the middle of [low, high] white, high red."""
    middle = (low + high) / 2
    half = (high - low) / 2
    t = max(-1.0, min(1.0, (value - middle) / half))
    return _mix(_ZERO, _POSITIVE, t) if t >= 0 else _mix(_ZERO, _NEGATIVE, -t)


def text_rgb(background: RGB) -> RGB:
    """Black or white, whichever reads better on `background`."""
    r, g, b = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def hex_color(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def digit(value: float, low: float, high: float) -> str:
    """0-9 for a value in [low, high] (for output without colour); '.' for nan."""
    if value is None or math.isnan(value):
        return "."
    t = (min(max(value, low), high) - low) / (high - low)
    return str(min(9, int(t * 10)))


def surprisal_digit(bits: float) -> str:
    """Whole bits of surprisal, 9 meaning 9 or more; '.' where not predicted."""
    if bits is None or math.isnan(bits):
        return "."
    return str(min(9, int(max(bits, 0.0))))
