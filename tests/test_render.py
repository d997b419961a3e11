"""The renderers: colour scale, digit rows, the HTML page (escaped, self-contained,
one span per character) and the loss plots."""

import math
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from charrnn.config import ModelConfig
from charrnn.inference.analysis import analyze_text, record_activations
from charrnn.model.network import CharRNN
from charrnn.text.vocab import Vocabulary
from charrnn.views.colorscale import activation_rgb, digit, surprisal_digit, surprisal_rgb
from charrnn.views.html import (
    activations_report,
    info_report,
    loss_svg,
    nice_ticks,
    surprisal_report,
)
from charrnn.views.terminal import (
    NEWLINE_MARK,
    digit_rows,
    loss_plot,
    surprisal_heatmap,
    top_table,
)

AWKWARD = "a <b>&amp; \"q\" 's'\n</div><script>x</script>\n"


@pytest.fixture(scope="module")
def awkward_model():
    torch.manual_seed(0)
    vocab = Vocabulary.from_text(AWKWARD + "z")
    model = CharRNN(ModelConfig(vocab_size=len(vocab), hidden=8, embedding=4)).eval()
    return model, vocab


class Spans(HTMLParser):
    """Collects each <span> (with its attributes and text) inside div.text, the
    tag names used, and whether any element pulls in an external resource."""

    def __init__(self):
        super().__init__()
        self.spans, self.tags, self.in_text, self.current = [], [], 0, None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "div" and attrs.get("class") == "text":
            self.in_text += 1
        elif tag == "span" and self.in_text:
            self.current = {"attrs": attrs, "text": ""}
            self.spans.append(self.current)

    def handle_endtag(self, tag):
        if tag == "span":
            self.current = None
        elif tag == "div" and self.in_text:
            self.in_text -= 1

    def handle_data(self, data):
        if self.current is not None:
            self.current["text"] += data


def parse(html):
    parser = Spans()
    parser.feed(html)
    return parser


def test_colour_scale():
    assert surprisal_rgb(float("nan")) is None
    low, high = surprisal_rgb(0.0), surprisal_rgb(20.0)
    assert high == surprisal_rgb(8.0) and low != high
    assert high[0] > high[1] and low[1] > high[1]  # red at the top, pale at the bottom
    assert activation_rgb(-1, -1, 1)[2] > activation_rgb(-1, -1, 1)[0]  # blue
    assert activation_rgb(1, -1, 1)[0] > activation_rgb(1, -1, 1)[2]  # red
    assert [surprisal_digit(b) for b in (0.2, 1.9, 8.5, 30.0, math.nan)] == list("0189.")
    assert [digit(v, 0, 1) for v in (0.0, 0.55, 1.0, 2.0)] == list("0599")


def test_digit_rows_put_one_digit_under_each_character():
    out = digit_rows("ab\ncd", list("12345"))
    assert out.splitlines() == ["ab" + NEWLINE_MARK, "123", "cd", "45"]


def test_surprisal_html_escapes_and_keeps_every_character(awkward_model):
    model, vocab = awkward_model
    analysis = analyze_text(model, vocab, AWKWARD)
    html = surprisal_report("t <&>", [("label <i>", analysis)], [("model", "m&m")])
    page = parse(html)
    assert "script" in page.tags  # our own script ...
    assert page.tags.count("script") == 1  # ... and not the one in the text
    assert "<b>" not in html and ">&lt;</span>" in html and ">&amp;</span>" in html
    assert "<title>t &lt;&amp;&gt;</title>" in html and "label &lt;i&gt;" in html
    shown = "".join(s["text"] for s in page.spans)
    assert shown.replace(NEWLINE_MARK, "\n") == AWKWARD
    assert len(page.spans) == len(AWKWARD)
    first_quote = page.spans[AWKWARD.index('"')]
    assert first_quote["text"] == '"'
    tip = first_quote["attrs"]["title"]
    assert tip.startswith(f"#{AWKWARD.index(chr(34))} '\"'  p = ") and "bits" in tip
    assert tip.count("'") >= 5 and "top 5:" in tip
    assert all("background:#" in s["attrs"]["style"] for s in page.spans)
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r"\b(src|href)\s*=|@import|url\(", html)


def test_activations_page(awkward_model):
    model, vocab = awkward_model
    acts = record_activations(model, vocab, AWKWARD)
    html = activations_report("inspect", acts, [("h", 2), ("f", 2)], [("model", "m")])
    page = parse(html)
    assert len(page.spans) == 2 * len(AWKWARD)
    value = acts.values["f"][0, 2]
    assert f"f[2] = {value:+.4f}" in page.spans[len(AWKWARD)]["attrs"]["title"]
    assert "forget gate" in html


def test_top_table_marks_the_actual_character(tiny_model):
    analysis = analyze_text(tiny_model.model, tiny_model.vocab, "All:", top_k=3)
    table = top_table(analysis, [0, 3])
    assert [c.header for c in table.columns] == ["pos", "char", "p", "bits", "#1", "#2", "#3"]
    assert table.row_count == 2
    # With every character ranked, the actual one is in each row once, and only it is bold.
    every = analyze_text(tiny_model.model, tiny_model.vocab, "All: Speak", top_k=999)
    positions = [0, 2, 4, 9]
    table = top_table(every, positions)
    ranked = table.columns[4:]
    assert len(ranked) == len(tiny_model.vocab)
    for row, pos in enumerate(positions):
        cells = [column._cells[row] for column in ranked]
        bold = [cell.plain for cell in cells if cell.style == "bold"]
        actual = "␣" if every.text[pos] == " " else every.text[pos]
        assert bold == [f"{actual} {every.probs[pos]:.3f}"], (pos, bold)
        assert table.columns[1]._cells[row] == actual


def test_heatmap_text_has_one_styled_cell_per_character(tiny_model):
    analysis = analyze_text(tiny_model.model, tiny_model.vocab, "Speak,\nspeak.")
    text = surprisal_heatmap(analysis, color=True)
    assert text.plain == "Speak," + NEWLINE_MARK + "\nspeak."
    assert len([s for s in text.spans if s.style.bgcolor is not None]) == 13
    plain = surprisal_heatmap(analysis, color=False)
    assert plain.splitlines()[0] == "Speak," + NEWLINE_MARK and len(plain.splitlines()[1]) == 7


HISTORY = [
    {"step": 0, "train_loss": None, "val_loss": 4.4},
    {"step": 50, "train_loss": 3.0, "val_loss": 2.9},
    {"step": 100, "train_loss": 2.2, "val_loss": 2.4},
]


def test_loss_plot_text():
    lines = loss_plot(HISTORY, width=40, height=10)
    grid = lines[:10]
    assert lines[0].startswith("4.400 |") and lines[9].startswith("2.200 |")
    assert grid[0][7] == "o"  # the first validation loss: top left corner
    assert "·" in "".join(grid) and "step 0" in lines[11] and lines[11].endswith("100")
    assert loss_plot([]) == ["(no loss records to plot)"]


def test_nice_ticks():
    assert nice_ticks(30, 300) == [100, 200, 300]
    assert nice_ticks(0, 40) == [0, 10, 20, 30, 40]
    assert nice_ticks(1.81, 3.52) == [2.0, 2.5, 3.0, 3.5]
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]


def test_loss_svg_has_a_line_per_series():
    svg = loss_svg(HISTORY)
    points = {
        key: value.split() for key, value in re.findall(r'class="(\w+)" points="([^"]+)"', svg)
    }
    assert len(points["train_loss"]) == 2 and len(points["val_loss"]) == 3
    ys = [float(p.split(",")[1]) for p in points["val_loss"]]
    assert ys == sorted(ys)  # falling loss: y grows downwards in SVG
    page = info_report("info", [("cell", "lstm")], HISTORY)
    assert page.count("<svg") == 1 and "<td>4.4000</td>" in page
    assert "no loss records" in loss_svg([])


def test_surprisal_bits_match_probabilities(awkward_model):
    model, vocab = awkward_model
    analysis = analyze_text(model, vocab, "ab")
    np.testing.assert_allclose(2.0**-analysis.surprisal_bits, analysis.probs)


def test_a_share_is_never_rounded_to_nothing():
    from charrnn.views.figures import share_text

    # info's "clipped steps": 4 steps of 10,000 clipped is 0.04%, not 0.0%
    assert share_text(4 / 10_000) == "0.04%"
    assert [share_text(x) for x in (0, 0.125, 1.0, None)] == ["0%", "12.5%", "100%", "-"]
