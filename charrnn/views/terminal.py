"""Terminal renderings of analyses: rich renderables and plain strings, never printed here.

Coloured text (surprisal heatmaps, unit activations) comes as a rich Text; for
output without colour (NO_COLOR, a pipe) the same information is a plain
string with a row of digits under each line of text. Tables are rich Tables;
the plots (losses, gradient norms) are plain text lines.
"""

from __future__ import annotations

import math

import numpy as np
from rich.style import Style
from rich.table import Table
from rich.text import Text

from ..inference.analysis import GATE_NAMES, Activations, TextAnalysis, UnitMatch, value_range
from ..inference.analysis import display_value as squash
from ..inference.gradients import GradientDecay
from . import figures
from .colorscale import (
    LEGEND_BITS,
    activation_rgb,
    digit,
    surprisal_digit,
    surprisal_rgb,
    text_rgb,
)

NEWLINE_MARK = "↵"


def shown_char(char: str) -> str:
    """How a character appears in a heatmap: whitespace and controls made visible."""
    if char == "\n":
        return NEWLINE_MARK
    if char == "\t":
        return "⇥"
    if ord(char) < 32 or 0x7F <= ord(char) < 0xA0:
        return "·"
    return char


def char_label(char: str) -> str:
    """A character standing alone in a table cell: a space shows as ␣."""
    return "␣" if char == " " else shown_char(char)


def _style(rgb) -> Style:
    if rgb is None:
        return Style(dim=True)
    return Style(bgcolor=f"rgb{rgb}", color=f"rgb{text_rgb(rgb)}")


def colored_text(text: str, colors: list) -> Text:
    """Each character on its background colour (an (r, g, b) or None); a newline is
    shown as a coloured ↵ and then breaks the line."""
    out = Text()
    for char, rgb in zip(text, colors):
        out.append(shown_char(char), _style(rgb))
        if char == "\n":
            out.append("\n")
    return out


def digit_rows(text: str, digits: list[str]) -> str:
    """Each line of text with a row of digits beneath it, one under each character."""
    lines: list[str] = []
    shown, marks = [], []
    for char, mark in zip(text, digits):
        shown.append(shown_char(char))
        marks.append(mark)
        if char == "\n":
            lines += ["".join(shown), "".join(marks)]
            shown, marks = [], []
    if shown or not lines:
        lines += ["".join(shown), "".join(marks)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- surprisal
def surprisal_heatmap(analysis: TextAnalysis, color: bool) -> Text | str:
    bits = analysis.surprisal_bits.tolist()
    if color:
        return colored_text(analysis.text, [surprisal_rgb(b) for b in bits])
    return digit_rows(analysis.text, [surprisal_digit(b) for b in bits])


def surprisal_legend(color: bool) -> Text | str:
    if not color:
        return (
            "surprisal: the digit under each character is its surprisal in whole bits "
            "(0 = expected, 9 = 9 bits or more, . = not predicted)"
        )
    legend = Text("surprisal (bits): ")
    for bits in LEGEND_BITS:
        label = f" {bits}+ " if bits == LEGEND_BITS[-1] else f" {bits} "
        legend.append(label, _style(surprisal_rgb(bits)))
    return legend


def score_line(analysis: TextAnalysis) -> str:
    return figures.score_line(analysis.score())


def top_table(analysis: TextAnalysis, positions: list[int], title: str | None = None) -> Table:
    """For each position: the character, its probability and surprisal, and the
    model's K most likely characters there (the actual one in bold; ␣ is a space,
    ↵ a newline)."""
    k = analysis.top_probs.shape[1]
    table = Table(title=title)
    table.add_column("pos", justify="right")
    table.add_column("char")
    table.add_column("p", justify="right")
    table.add_column("bits", justify="right")
    for rank in range(k):
        table.add_column(f"#{rank + 1}")
    bits = analysis.surprisal_bits
    for pos in positions:
        char = analysis.text[pos]
        p = analysis.probs[pos]
        if math.isnan(p):
            table.add_row(str(pos), char_label(char), "-", "-", *["" for _ in range(k)])
            continue
        cells = []
        for alt, q in zip(analysis.top_chars[pos], analysis.top_probs[pos].tolist()):
            cells.append(Text(f"{char_label(alt)} {q:.3f}", style="bold" if alt == char else ""))
        table.add_row(str(pos), char_label(char), f"{p:.4f}", f"{bits[pos]:.2f}", *cells)
    return table


# --------------------------------------------------------------------------- activations
def state_label(name: str) -> str:
    fixed = {"h": "hidden state h", "c": "cell state c (as tanh c)"}
    return fixed[name] if name in fixed else GATE_NAMES[name]


def activation_heatmap(activations: Activations, name: str, unit: int, color: bool) -> Text | str:
    low, high = value_range(name)
    values = squash(name, activations.values[name][:, unit]).tolist()
    if color:
        return colored_text(activations.text, [activation_rgb(v, low, high) for v in values])
    return digit_rows(activations.text, [digit(v, low, high) for v in values])


def activation_title(activations: Activations, name: str, unit: int) -> str:
    return f"layer {activations.layer} unit {unit}: {state_label(name)}"


def activation_legend(name: str, color: bool) -> Text | str:
    low, high = value_range(name)
    if not color:
        return f"activation: the digit under each character maps {low:g} .. {high:g} to 0 .. 9"
    legend = Text("activation: ")
    for value in np.linspace(low, high, 5).tolist():
        legend.append(f" {value:+.1f} ", _style(activation_rgb(value, low, high)))
    return legend


def units_table(matches: list[UnitMatch], feature: str, layer: int) -> Table:
    table = Table(title=f"r with {feature}, layer {layer}", min_width=36)
    table.add_column("state")
    table.add_column("unit", justify="right")
    table.add_column("r", justify="right")
    for match in matches:
        table.add_row(match.state, str(match.unit), f"{match.r:+.3f}")
    return table


# --------------------------------------------------------------------------- info
def info_table(rows: list[tuple[str, str]], title: str) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


Series = tuple[str, str, list[tuple[float, float]]]  # (label, mark, [(x, y), ...])


def text_plot(
    series: list[Series],
    x_name: str,
    note: str,
    log_y: bool = False,
    width: int = 64,
    height: int = 14,
) -> list[str]:
    """A text plot of several series, each drawn with its own mark and linearly
    interpolated between its points; later series are drawn over earlier ones. With
    `log_y` the y axis is logarithmic (points that are not positive are left out).
    Under the axis: `x_name` and the x range, then a legend ending in `(note)`."""
    if log_y:
        series = [
            (label, mark, [(x, math.log10(y)) for x, y in points if y > 0 and math.isfinite(y)])
            for label, mark, points in series
        ]
    points = [p for _, _, values in series for p in values]
    if not points:
        return []
    xs, ys = [x for x, _ in points], [y for _, y in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    grid = [[" "] * width for _ in range(height)]

    def column(x: float) -> int:
        return 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (width - 1))

    def row(y: float) -> int:
        return height - 1 - round((y - y0) / (y1 - y0) * (height - 1))

    for _, mark, values in series:
        for (s0, v0), (s1, v1) in zip(values, values[1:]):
            c0, c1 = column(s0), column(s1)
            for c in range(c0, c1 + 1):
                t = 0.0 if c1 == c0 else (c - c0) / (c1 - c0)
                grid[row(v0 + (v1 - v0) * t)][c] = mark
        for s, v in values:
            grid[row(v)][column(s)] = mark

    def label(value: float) -> str:
        return f"{10**value:.1e}" if log_y else f"{value:.3f}"

    label_width = max(len(label(y1)), len(label(y0)))
    lines = []
    for r, cells in enumerate(grid):
        value = y1 - (y1 - y0) * r / (height - 1)
        shown = label(value) if r in (0, height // 2, height - 1) else ""
        lines.append(f"{shown:>{label_width}} |" + "".join(cells))
    lines.append(" " * label_width + " +" + "-" * width)
    left, right = f"{x_name} {x0:,}", f"{x1:,}"
    lines.append(" " * (label_width + 2) + left + right.rjust(width - len(left)))
    legend = "   ".join(f"{mark} {name}" for name, mark, _ in series)
    lines.append(" " * (label_width + 2) + legend + f"  ({note})")
    return lines


PLOT_MARKS = {"train_loss": "·", "val_loss": "o"}


def loss_plot(history: list[dict], width: int = 64, height: int = 14) -> list[str]:
    """A text plot of train and validation loss (nats/char) over steps; validation is
    drawn last so it shows where they overlap."""
    series = [
        (key.replace("_loss", ""), mark, _over_steps(history, key))
        for key, mark in PLOT_MARKS.items()
    ]
    lines = text_plot(series, "step", "loss in nats/char", width=width, height=height)
    return lines or ["(no loss records to plot)"]


def _over_steps(history: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in history if r.get(key) is not None]


GRADIENT_MARKS = {"grad_norm_max": "^", "grad_norm_mean": "o"}


def gradient_norm_plot(history: list[dict], width: int = 64, height: int = 10) -> list[str]:
    """A text plot (log scale) of the gradient norm before clipping, the mean and the
    largest of each validation interval; empty when the log has none."""
    series = [
        (key.replace("grad_norm_", ""), mark, _over_steps(history, key))
        for key, mark in GRADIENT_MARKS.items()
    ]
    return text_plot(
        series, "step", "gradient norm before clipping, log scale", True, width, height
    )


# --------------------------------------------------------------------------- gradient decay
DECAY_MARKS = "ox+*#@%&"


def decay_plot(
    curves: list[tuple[str, GradientDecay]], width: int = 64, height: int = 16
) -> list[str]:
    """A text plot (log scale) of the mean gradient norm over the distance k, a mark per
    model and state."""
    curves_by_state = [
        (f"{label} {state}", values)
        for label, decay in curves
        for state, values in decay.norms.items()
    ]
    series = [
        (name, DECAY_MARKS[index % len(DECAY_MARKS)], list(enumerate(values.tolist(), start=1)))
        for index, (name, values) in enumerate(curves_by_state)
    ]
    note = "mean |d loss_t / d state_t-k|, log scale"
    return text_plot(series, "k", note, True, width, height) or ["(no gradient to plot)"]


def decay_table(curves: list[tuple[str, GradientDecay]]) -> Table:
    """figures.decay_rows as a table, with what its columns mean as its caption."""
    header, rows = figures.decay_rows(curves)
    table = Table(
        title="mean norm of the gradient of the loss at t with respect to the state at t-k",
        caption=figures.DECAY_NOTE,
    )
    for index, name in enumerate(header):
        table.add_column(name, justify="left" if index < 4 else "right")
    for row in rows:
        table.add_row(*row)
    return table


# --------------------------------------------------------------------------- samples
SAMPLE_WIDTH = 76  # characters of sample text per terminal line


def sample_lines(text: str, width: int = SAMPLE_WIDTH, max_lines: int = 3) -> list[str]:
    """A sample as at most `max_lines` lines of `width` characters, newlines shown as ↵
    (and other whitespace made visible) so the lines are the sample's characters in
    order; a longer sample ends in …."""
    shown = "".join(shown_char(char) for char in text)
    lines = [shown[i : i + width] for i in range(0, len(shown), width)][:max_lines] or [""]
    if len(shown) > width * max_lines:
        lines[-1] = lines[-1][: width - 1] + "…"
    return lines


def samples_over_run(history: list[dict]) -> list[dict]:
    """The validation records that carry a sample, and of them the ones that show how
    the samples changed: the first, the middle one and the last."""
    sampled = [r for r in history if r.get("sample") is not None]
    if len(sampled) <= 3:
        return sampled
    return [sampled[0], sampled[len(sampled) // 2], sampled[-1]]


def sample_history(history: list[dict], max_lines: int = 2) -> list[str]:
    """Lines showing the samples drawn during training (samples_over_run): a heading
    with each one's step and validation loss, then its text (sample_lines)."""
    lines = []
    for record in samples_over_run(history):
        lines.append(f"step {record['step']:,}, val {record['val_loss']:.4f} nats/char:")
        lines += [f"  {line}" for line in sample_lines(record["sample"], max_lines=max_lines)]
    return lines
