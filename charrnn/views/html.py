"""Self-contained HTML pages of analyses: inline CSS, JS and SVG, no external assets.

Each character is a <span> coloured like the terminal heatmap, with its details
(probability, surprisal, top alternatives, or an activation) in its `title`,
which a small script turns into a styled tooltip. All text is escaped.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from html import escape

import numpy as np

from ..inference.analysis import Activations, TextAnalysis, UnitMatch, value_range
from ..inference.analysis import display_value as squash
from ..inference.gradients import GradientDecay
from .colorscale import (
    LEGEND_BITS,
    activation_rgb,
    hex_color,
    surprisal_rgb,
    text_rgb,
)
from .figures import DECAY_NOTE, decay_rows, score_pairs, share_text
from .terminal import NEWLINE_MARK, shown_char, state_label

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
.text { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap;
  line-height: 1.6; border: 1px solid #ddd; padding: 0.8em; border-radius: 4px; }
.text span { padding: 1px 0; }
.text span.nl { opacity: 0.6; }
.text span.unscored { color: #999; }
table.summary { border-collapse: collapse; margin: 0.6em 0; }
table.summary td, table.summary th { border: 1px solid #ddd; padding: 0.25em 0.7em;
  text-align: left; }
.legend span { display: inline-block; padding: 0.1em 0.6em; font-family: monospace; }
#tip { position: fixed; display: none; background: #222; color: #fff; padding: 0.4em 0.6em;
  border-radius: 4px; font: 12px/1.4 ui-monospace, monospace; white-space: pre;
  pointer-events: none; z-index: 10; }
svg text { font: 12px system-ui, sans-serif; fill: #333; }
td.sample { font-family: ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap; }
"""

# The title attribute works without script; this shows it at once, styled.
SCRIPT = """
(function () {
  var tip = document.getElementById('tip');
  document.addEventListener('mouseover', function (e) {
    var el = e.target.closest('[data-tip]');
    if (!el) { tip.style.display = 'none'; return; }
    tip.textContent = el.getAttribute('data-tip');
    tip.style.display = 'block';
  });
  document.addEventListener('mousemove', function (e) {
    tip.style.left = (e.clientX + 12) + 'px';
    tip.style.top = (e.clientY + 14) + 'px';
  });
  document.querySelectorAll('[title]').forEach(function (el) {
    el.setAttribute('data-tip', el.getAttribute('title'));
    el.removeAttribute('title');
  });
})();
"""


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<h1>{escape(title)}</h1>\n{body}\n<div id="tip"></div>\n'
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _span(char: str, rgb, tip: str, extra_class: str = "") -> str:
    classes = [c for c in (extra_class, "nl" if char == "\n" else "") if c]
    attrs = f' class="{" ".join(classes)}"' if classes else ""
    if rgb is not None:
        attrs += f' style="background:{hex_color(rgb)};color:{hex_color(text_rgb(rgb))}"'
    shown = NEWLINE_MARK if char == "\n" else shown_char(char)
    span = f'<span{attrs} title="{escape(tip)}">{escape(shown)}</span>'
    return span + "\n" if char == "\n" else span


def summary_table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f'<table class="summary">{cells}</table>'


def column_table(columns, rows, css: str = "summary", last_class: str = "") -> str:
    """A table with a header row of `columns` and a row per entry of `rows`, its cells
    as text (escaped here); `last_class` is the class of each row's last cell."""
    head = "".join(f"<th>{escape(str(k))}</th>" for k in columns)
    last = f' class="{last_class}"' if last_class else ""
    body = "".join(
        "<tr>"
        + "".join(f"<td>{escape(str(cell))}</td>" for cell in row[:-1])
        + f"<td{last}>{escape(str(row[-1]))}</td></tr>"
        for row in rows
    )
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


# --------------------------------------------------------------------------- surprisal
def surprisal_html(analysis: TextAnalysis) -> str:
    """The text as coloured spans, each titled with p, surprisal and the top alternatives."""
    spans = []
    bits = analysis.surprisal_bits.tolist()
    for pos, char in enumerate(analysis.text):
        p = analysis.probs[pos]
        if math.isnan(p):
            spans.append(_span(char, None, f"{char!r}: context only, not predicted", "unscored"))
            continue
        alternatives = ", ".join(
            f"{alt!r} {q:.3f}"
            for alt, q in zip(analysis.top_chars[pos], analysis.top_probs[pos].tolist())
        )
        tip = (
            f"#{pos} {char!r}  p = {p:.4f}  surprisal {bits[pos]:.2f} bits\n"
            f"top {len(analysis.top_chars[pos])}: {alternatives}"
        )
        spans.append(_span(char, surprisal_rgb(bits[pos]), tip))
    return f'<div class="text">{"".join(spans)}</div>'


def surprisal_legend_html() -> str:
    cells = "".join(
        f'<span style="background:{hex_color(surprisal_rgb(b))};'
        f'color:{hex_color(text_rgb(surprisal_rgb(b)))}">'
        f"{b}{'+' if b == LEGEND_BITS[-1] else ''}</span>"
        for b in LEGEND_BITS
    )
    return f'<p class="legend">surprisal in bits (hover a character for details): {cells}</p>'


def surprisal_report(
    title: str, sections: list[tuple[str, TextAnalysis]], about: list[tuple[str, str]]
) -> str:
    """One page: `about` (model, totals), then each labelled text as a heatmap."""
    body = [summary_table(about), surprisal_legend_html()]
    for label, analysis in sections:
        body.append(f"<h2>{escape(label)}</h2>")
        body.append(surprisal_html(analysis))
        body.append(summary_table(score_pairs(analysis.score())))
    return page(title, "\n".join(body))


# --------------------------------------------------------------------------- activations
def activation_html(activations: Activations, name: str, unit: int) -> str:
    low, high = value_range(name)
    raw = activations.values[name][:, unit].tolist()
    shown = squash(name, activations.values[name][:, unit]).tolist()
    spans = []
    for pos, (char, value, colour_value) in enumerate(zip(activations.text, raw, shown)):
        tip = f"#{pos} {char!r}  {name}[{unit}] = {value:+.4f}"
        spans.append(_span(char, activation_rgb(colour_value, low, high), tip))
    return f'<div class="text">{"".join(spans)}</div>'


def activation_legend_html(name: str) -> str:
    low, high = value_range(name)
    cells = "".join(
        f'<span style="background:{hex_color(activation_rgb(v, low, high))}">{v:+.1f}</span>'
        for v in np.linspace(low, high, 5).tolist()
    )
    return f'<p class="legend">{escape(state_label(name))}: {cells}</p>'


def activations_report(
    title: str,
    activations: Activations,
    shown: list[tuple[str, int]],
    about: list[tuple[str, str]],
    matches: list[UnitMatch] | None = None,
    feature: str | None = None,
) -> str:
    """One page: the chosen (state, unit) pairs as coloured text, and the correlation table."""
    body = [summary_table(about)]
    if matches:
        rows = [(m.state, m.unit, f"{m.r:+.3f}") for m in matches]
        body.append(
            f"<h2>Units most correlated with {escape(feature or '')}</h2>"
            + column_table(("state", "unit", "r"), rows)
        )
    for name, unit in shown:
        body.append(f"<h2>layer {activations.layer} unit {unit}: {escape(state_label(name))}</h2>")
        body.append(activation_legend_html(name))
        body.append(activation_html(activations, name, unit))
    return page(title, "\n".join(body))


# --------------------------------------------------------------------------- charts
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]


@dataclass(frozen=True)
class ChartSeries:
    key: str  # the polyline's class
    label: str  # in the legend
    colour: str
    points: list[tuple[float, float]]
    dashed: bool = False


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2, 2.5 or 5 times a power of ten) in [low, high]."""
    span = high - low
    raw = span / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks, value = [], math.ceil(low / step) * step
    while value <= high + 1e-9 * span:
        ticks.append(value)
        value += step
    return ticks


def decade_ticks(low: float, high: float, count: int = 8) -> list[int]:
    """Powers of ten (their exponents) in [low, high] (log10 values), at most about
    `count` of them; the ends themselves when no power of ten lies between."""
    first, last = math.ceil(low - 1e-9), math.floor(high + 1e-9)
    stride = max(1, math.ceil((last - first + 1) / count))
    return list(range(first, last + 1, stride))


@dataclass(frozen=True)
class _Frame:
    """Where a chart's data range (x0..x1, y0..y1) lies in its SVG: the plot's top-left
    corner and size, in pixels."""

    x0: float
    x1: float
    y0: float
    y1: float
    left: float
    top: float
    width: float
    height: float

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / (self.x1 - self.x0) * self.width

    def py(self, y: float) -> float:
        return self.top + (self.y1 - y) / (self.y1 - self.y0) * self.height


def chart_svg(
    series: list[ChartSeries],
    x_label: str,
    y_label: str,
    log_y: bool = False,
    markers: bool = True,
    empty: str = "nothing to plot",
    width: int = 720,
    height: int = 360,
) -> str:
    """An inline SVG line chart, one polyline (class = the series' key) per series;
    with `log_y` a logarithmic y axis (points that are not positive are left out)."""
    if log_y:
        series = [
            dataclasses.replace(
                s, points=[(x, math.log10(y)) for x, y in s.points if y > 0 and math.isfinite(y)]
            )
            for s in series
        ]
    points = [p for s in series for p in s.points]
    left, right, top, bottom = 72, 20, 20, 48
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(y_label)}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
    ]
    if not points:
        parts.append(f'<text x="{left}" y="{top + 20}">{escape(empty)}</text></svg>')
        return "".join(parts)
    x0, x1 = min(s for s, _ in points), max(s for s, _ in points)
    y0, y1 = min(v for _, v in points), max(v for _, v in points)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    frame = _Frame(
        x0, x1, y0 - pad, y1 + pad, left, top, width - left - right, height - top - bottom
    )
    parts += _chart_axes(frame, log_y, x_label, y_label, height)
    parts += _chart_lines(frame, series, markers)
    parts.append("</svg>")
    return "".join(parts)


def _chart_axes(frame: _Frame, log_y: bool, x_label: str, y_label: str, height: int) -> list[str]:
    """The grid lines and tick labels (decades on a log axis), the axes and their labels."""
    left, top, plot_w, plot_h = frame.left, frame.top, frame.width, frame.height
    ticks = [(d, f"1e{d}") for d in decade_ticks(frame.y0, frame.y1)] if log_y else []
    if not log_y or len(ticks) < 2:
        ticks = [
            (value, f"{10**value:.2g}" if log_y else f"{value:.2f}")
            for value in nice_ticks(frame.y0, frame.y1)
        ]
    parts = []
    for value, text in ticks:
        y = frame.py(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>'
        )
    for value in (v for v in nice_ticks(frame.x0, frame.x1) if v == int(v)):
        x = frame.px(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 5}" '
            f'stroke="#333"/><text x="{x:.1f}" y="{top + plot_h + 18}" '
            f'text-anchor="middle">{value:,.0f}</text>'
        )
    parts.append(
        f'<path d="M{left},{top} V{top + plot_h} H{left + plot_w}" fill="none" stroke="#333"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text transform="translate(14,{top + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    return parts


def _chart_lines(frame: _Frame, series: list[ChartSeries], markers: bool) -> list[str]:
    """A polyline per series with points (and a dot per point with `markers`), and
    the legend in the top-right corner."""
    parts = []
    longest = max(len(s.label) for s in series)
    lx = max(frame.left + 10, frame.left + frame.width - 40 - 7 * longest)
    for index, s in enumerate(x for x in series if x.points):
        dash = ' stroke-dasharray="6,4"' if s.dashed else ""
        coords = " ".join(f"{frame.px(x):.1f},{frame.py(y):.1f}" for x, y in s.points)
        parts.append(
            f'<polyline class="{escape(s.key)}" points="{coords}" fill="none" '
            f'stroke="{s.colour}" stroke-width="2"{dash}/>'
        )
        if markers:
            parts += [
                f'<circle cx="{frame.px(x):.1f}" cy="{frame.py(y):.1f}" r="3" fill="{s.colour}"/>'
                for x, y in s.points
            ]
        ly = frame.top + 16 + 18 * index
        parts.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 24}" y2="{ly - 4}" stroke="{s.colour}" '
            f'stroke-width="2"{dash}/><text x="{lx + 30}" y="{ly}">{escape(s.label)}</text>'
        )
    return parts


# --------------------------------------------------------------------------- training curves
SERIES = [("train_loss", "train", "#1f77b4"), ("val_loss", "validation", "#d62728")]
GRADIENT_SERIES = [("grad_norm_mean", "mean", "#2ca02c"), ("grad_norm_max", "largest", "#ff7f0e")]


def _history_series(history: list[dict], keys) -> list[ChartSeries]:
    return [
        ChartSeries(
            key, label, colour, [(r["step"], r[key]) for r in history if r.get(key) is not None]
        )
        for key, label, colour in keys
    ]


def loss_svg(history: list[dict], width: int = 720, height: int = 360) -> str:
    """An inline SVG line chart of train and validation loss (nats/char) over steps."""
    return chart_svg(
        _history_series(history, SERIES),
        "step",
        "loss (nats/char)",
        empty="no loss records to plot",
        width=width,
        height=height,
    )


def has_gradients(history: list[dict]) -> bool:
    """Whether a run's log records gradient norms (runs from before it did not)."""
    return any(r.get("grad_norm_mean") is not None for r in history)


def gradient_norm_svg(history: list[dict], width: int = 720, height: int = 300) -> str:
    """The gradient norm before clipping over steps, mean and largest of each
    validation interval, on a log scale."""
    return chart_svg(
        _history_series(history, GRADIENT_SERIES),
        "step",
        "gradient norm",
        log_y=True,
        empty="no gradient norms recorded",
        width=width,
        height=height,
    )


def info_report(title: str, about: list[tuple[str, str]], history: list[dict]) -> str:
    body = [summary_table(about), "<h2>Training curves</h2>", loss_svg(history)]
    gradients = has_gradients(history)
    if gradients:
        body += ["<h2>Gradient norm before clipping</h2>", gradient_norm_svg(history)]
    if history:
        columns = ["step", "train loss", "val loss"]
        columns += ["grad norm mean", "grad norm max", "clipped"] * gradients
        rows = []
        for r in history:
            cells = [f"{r['step']:,}", _fmt(r.get("train_loss")), _fmt(r.get("val_loss"))]
            if gradients:
                cells += [_fmt(r.get("grad_norm_mean")), _fmt(r.get("grad_norm_max"))]
                cells.append(share_text(r.get("clipped_share")))
            rows.append(cells)
        body.append(column_table(columns, rows))
    sampled = [r for r in history if r.get("sample") is not None]
    if sampled:
        body.append("<h2>Samples while training</h2>")
        body.append(
            column_table(
                ("step", "val nats", "sample"),
                [(f"{r['step']:,}", _fmt(r.get("val_loss")), r["sample"]) for r in sampled],
                css="summary samples",
                last_class="sample",
            )
        )
    return page(title, "\n".join(body))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


# --------------------------------------------------------------------------- gradient decay
def decay_svg(curves: list[tuple[str, GradientDecay]], width: int = 720, height: int = 400) -> str:
    """The mean gradient norm over the distance k on a log scale: a colour per model,
    h solid and the LSTM's c dashed."""
    series = []
    for index, (label, decay) in enumerate(curves):
        for state, values in decay.norms.items():
            series.append(
                ChartSeries(
                    f"decay-{index}-{state}",
                    f"{label} {state}",
                    COLOURS[index % len(COLOURS)],
                    list(enumerate(values.tolist(), start=1)),
                    dashed=state == "c",
                )
            )
    return chart_svg(
        series,
        "k: characters back",
        "mean |d loss_t / d state_t-k|",
        log_y=True,
        markers=False,
        width=width,
        height=height,
    )


def decay_report(
    title: str, curves: list[tuple[str, GradientDecay]], about: list[tuple[str, str]]
) -> str:
    """One page: `about` (the text), the chart, and per model and state where the norm
    falls below DECAY_RATIO of its k = 1 value and its factor per step."""
    header, rows = decay_rows(curves)
    body = [
        summary_table(about),
        decay_svg(curves),
        column_table(header, rows, css="summary decay"),
        f"<p>{escape(DECAY_NOTE)}</p>",
    ]
    return page(title, "\n".join(body))
