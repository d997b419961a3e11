"""Self-contained HTML pages of analyses: inline CSS, JS and SVG, no external assets.

Each character is a <span> coloured like the terminal heatmap, with its details
(probability, surprisal, top alternatives, or an activation) in its `title`,
which a small script turns into a styled tooltip. All text is escaped.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from ..inference.analysis import Activations, TextAnalysis, UnitMatch, value_range
from ..inference.analysis import display_value as squash
from .colorscale import (
    LEGEND_BITS,
    activation_rgb,
    hex_color,
    surprisal_rgb,
    text_rgb,
)
from .figures import score_pairs
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
        rows = "".join(
            f"<tr><td>{escape(m.state)}</td><td>{m.unit}</td><td>{m.r:+.3f}</td></tr>"
            for m in matches
        )
        body.append(
            f"<h2>Units most correlated with {escape(feature or '')}</h2>"
            f'<table class="summary"><tr><th>state</th><th>unit</th><th>r</th></tr>{rows}</table>'
        )
    for name, unit in shown:
        body.append(f"<h2>layer {activations.layer} unit {unit}: {escape(state_label(name))}</h2>")
        body.append(activation_legend_html(name))
        body.append(activation_html(activations, name, unit))
    return page(title, "\n".join(body))


# --------------------------------------------------------------------------- training curves
SERIES = [("train_loss", "train", "#1f77b4"), ("val_loss", "validation", "#d62728")]


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


def loss_svg(history: list[dict], width: int = 720, height: int = 360) -> str:
    """An inline SVG line chart of train and validation loss (nats/char) over steps."""
    series = {
        key: [(r["step"], r[key]) for r in history if r.get(key) is not None]
        for key, _, _ in SERIES
    }
    points = [p for values in series.values() for p in values]
    left, right, top, bottom = 64, 20, 20, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="training curves">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
    ]
    if not points:
        parts.append(f'<text x="{left}" y="{top + 20}">no loss records to plot</text></svg>')
        return "".join(parts)
    x0, x1 = min(s for s, _ in points), max(s for s, _ in points)
    y0, y1 = min(v for _, v in points), max(v for _, v in points)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def px(step: float) -> float:
        return left + (step - x0) / (x1 - x0) * plot_w

    def py(loss: float) -> float:
        return top + (y1 - loss) / (y1 - y0) * plot_h

    for value in nice_ticks(y0, y1):
        y = py(value)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.2f}</text>'
        )
    for value in (v for v in nice_ticks(x0, x1) if v == int(v)):
        x = px(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top + plot_h}" x2="{x:.1f}" y2="{top + plot_h + 5}" '
            f'stroke="#333"/><text x="{x:.1f}" y="{top + plot_h + 18}" '
            f'text-anchor="middle">{value:,.0f}</text>'
        )
    parts.append(
        f'<path d="M{left},{top} V{top + plot_h} H{left + plot_w}" fill="none" stroke="#333"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">step</text>'
        f'<text transform="translate(14,{top + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">loss (nats/char)</text>'
    )
    for index, (key, label, colour) in enumerate(SERIES):
        values = series[key]
        if not values:
            continue
        coords = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in values)
        parts.append(
            f'<polyline class="{key}" points="{coords}" fill="none" stroke="{colour}" '
            f'stroke-width="2"/>'
        )
        parts += [
            f'<circle cx="{px(s):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>' for s, v in values
        ]
        lx, ly = left + plot_w - 150, top + 16 + 18 * index
        parts.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 24}" y2="{ly - 4}" stroke="{colour}" '
            f'stroke-width="2"/><text x="{lx + 30}" y="{ly}">{label}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def info_report(title: str, about: list[tuple[str, str]], history: list[dict]) -> str:
    body = [summary_table(about), "<h2>Training curves</h2>", loss_svg(history)]
    if history:
        body.append(
            _records_table(
                ("step", "train loss", "val loss"),
                [(r["step"], _fmt(r.get("train_loss")), _fmt(r.get("val_loss"))) for r in history],
            )
        )
    sampled = [r for r in history if r.get("sample") is not None]
    if sampled:
        body.append("<h2>Samples while training</h2>")
        body.append(
            _records_table(
                ("step", "val nats", "sample"),
                [(r["step"], _fmt(r.get("val_loss")), r["sample"]) for r in sampled],
                css="summary samples",
            )
        )
    return page(title, "\n".join(body))


def _records_table(columns, rows, css: str = "summary") -> str:
    """A table of validation records: a step, then text cells (escaped here); the last
    column of a "samples" table is set as a sample."""
    head = "".join(f"<th>{escape(k)}</th>" for k in columns)
    last = ' class="sample"' if "samples" in css else ""
    body = "".join(
        f"<tr><td>{step:,}</td>"
        + "".join(f"<td>{escape(cell)}</td>" for cell in cells[:-1])
        + f"<td{last}>{escape(cells[-1])}</td></tr>"
        for step, *cells in rows
    )
    return f'<table class="{css}"><tr>{head}</tr>{body}</table>'


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"
