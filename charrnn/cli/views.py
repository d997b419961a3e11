"""`charrnn inspect` and `charrnn info`: what the model sees, and how a run went."""

from __future__ import annotations

import json
import sys

import click

from ..errors import CharRNNError
from .base import (
    MODEL_ENV,
    MODEL_OPTION,
    QUIET_OPTION,
    cli,
    echo_err,
    html_option,
    is_colored,
    load_model_arg,
    print_colored,
    stdout_console,
    unescape,
    write_html,
)


def _read_one_text(text, text_file) -> str:
    from ..text.textfile import read_text

    if text is not None and text_file is not None:
        raise click.UsageError("give TEXT or --file, not both")
    if text_file is not None:
        return sys.stdin.read() if text_file == "-" else read_text(text_file)
    if text is not None:
        return unescape(text)
    if sys.stdin.isatty():
        raise click.UsageError("give TEXT, --file FILE, or pipe text in")
    return sys.stdin.read()


def _states(spec: str, cell: str) -> tuple[str, ...]:
    """--state h,c or gates or single gate letters, checked against the cell."""
    from ..inference.analysis import recorded_names
    from ..model.cells import GATES

    names: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part == "gates":
            if not GATES[cell]:
                raise click.BadParameter("a vanilla RNN has no gates", param_hint="--state")
            names += GATES[cell]
        elif part in recorded_names(cell):
            names.append(part)
        else:
            choices = ", ".join(recorded_names(cell) + (("gates",) if GATES[cell] else ()))
            raise click.BadParameter(
                f"{part!r} is not recorded for a {cell} model; choose from {choices}",
                param_hint="--state",
            )
    if not names:
        raise click.BadParameter("name at least one state", param_hint="--state")
    return tuple(dict.fromkeys(names))


def _units(spec: str | None) -> list[int]:
    if not spec:
        return []
    units = []
    for part in spec.split(","):
        try:
            if "-" in part.strip()[1:]:
                first, last = part.split("-", 1)
                units += range(int(first), int(last) + 1)
            else:
                units.append(int(part))
        except ValueError:
            raise click.BadParameter(
                f"{part!r}: give unit numbers like 3,17 or 0-7", param_hint="--units"
            ) from None
    return units


@cli.command()
@click.argument("text", required=False)
@MODEL_OPTION
@click.option(
    "--cells",
    is_flag=True,
    help="Show hidden-unit activations (the default, and for now the only mode).",
)
@click.option(
    "--file",
    "text_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Read the text from FILE ('-' = stdin).",
)
@click.option("--units", help="Units to show, e.g. 3,17 or 0-7.")
@click.option(
    "--state",
    "state_spec",
    default="h",
    show_default=True,
    help="What to show: h (hidden), c (LSTM cell state, coloured as tanh c), gates, or "
    "single gates: i,f,g,o (LSTM), r,z,n (GRU); comma-separated.",
)
@click.option(
    "--layer",
    type=int,
    default=-1,
    show_default=True,
    help="Layer to record (0 = first, -1 = last).",
)
@click.option(
    "--find",
    type=click.Choice(["quotes", "brackets", "line-position"]),
    help="List the units (of --state) most correlated with this feature of the text, "
    "and show the best ones unless --units is given.",
)
@click.option(
    "--count",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="Units listed by --find.",
)
@html_option("Write a self-contained HTML page of the activations.")
@click.option("--json", "as_json", is_flag=True, help="Print activations and matches as JSON.")
@QUIET_OPTION
def inspect(
    text,
    model_path,
    cells,
    text_file,
    units,
    state_spec,
    layer,
    find,
    count,
    html_file,
    as_json,
    quiet,
):
    """See what single units respond to: TEXT coloured by each unit's activation.

    Records the activations of one layer while reading TEXT (\\n in it is a
    newline, \\t a tab, \\\\ a backslash), --file, or stdin. --find
    quotes|brackets|line-position lists the units whose activation follows that
    feature most closely (Pearson r): the classic quote-detecting cell. Colour
    follows the terminal, as for `score --show`.
    """
    from ..inference.analysis import find_units, record_activations, select_units, value_range

    content = _read_one_text(text, text_file)
    loaded = load_model_arg(model_path)
    states = _states(state_spec, loaded.config.cell)
    activations = record_activations(loaded.model, loaded.vocab, content, layer)
    if not activations.text:
        raise CharRNNError("the text has no character the model knows")
    chosen = select_units(activations, _units(units))
    matches = find_units(activations, find, states, count) if find else []
    if chosen:
        shown = [(name, unit) for unit in chosen for name in states]
    elif matches:
        shown = [(m.state, m.unit) for m in matches[:3]]
    else:
        raise click.UsageError("choose units: --units 3,17 or --find FEATURE")
    if activations.unknown_chars:
        echo_err(
            f"warning: skipped {activations.unknown_chars} character(s) the model has never seen"
        )
    about = [
        ("model", str(loaded.path)),
        (
            "layer",
            f"{activations.layer} of {loaded.config.layers} ({loaded.config.cell}, "
            f"{loaded.config.hidden} units)",
        ),
        ("characters", f"{len(activations.text):,}"),
    ]
    if html_file:
        from ..views.html import activations_report

        write_html(
            html_file,
            activations_report("charrnn inspect", activations, shown, about, matches, find),
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "text": activations.text,
                    "layer": activations.layer,
                    "matches": [{"state": m.state, "unit": m.unit, "r": m.r} for m in matches],
                    "units": [
                        {
                            "state": name,
                            "unit": unit,
                            "values": activations.values[name][:, unit].tolist(),
                        }
                        for name, unit in shown
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    from ..views.terminal import (
        activation_heatmap,
        activation_legend,
        activation_title,
        units_table,
    )

    console = stdout_console()
    color = is_colored(console)
    if matches:
        console.print(units_table(matches, find, activations.layer))
    for name, unit in shown:
        click.echo(activation_title(activations, name, unit))
        print_colored(console, color, activation_heatmap(activations, name, unit, color))
    # One legend per value range: sigmoid gates lie in [0, 1], the rest in [-1, 1].
    legends = {value_range(name): name for name, _ in shown}
    for name in legends.values():
        print_colored(console, color, activation_legend(name, color))


@cli.command()
@click.argument("path", type=click.Path(), required=False, envvar=MODEL_ENV)
@html_option("Write the same as an HTML page with an SVG chart of the losses.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@QUIET_OPTION
def info(path, html_file, as_json, quiet):
    """Describe a model file or run directory: config, vocabulary, parameters,
    best validation loss, train / validation loss over steps and the samples
    drawn while training (the first, a middle one and the last; --html shows
    all), from the run's metrics.jsonl. PATH defaults to $CHARRNN_MODEL, else
    the bundled model.
    """
    from ..bundled import bundled_model
    from ..views.runinfo import run_info

    described = run_info(path or bundled_model())
    for warning in described.warnings:
        echo_err(f"warning: {warning}")
    if html_file:
        from ..views.html import info_report

        title = f"charrnn info: {described.loaded.path.name}"
        write_html(html_file, info_report(title, described.rows(), described.history))
    if as_json:
        click.echo(json.dumps(described.to_dict()))
        return
    from ..views.terminal import info_table, loss_plot, sample_history

    console = stdout_console()
    console.print(info_table(described.rows(), "charrnn info"))
    if described.history:
        for line in loss_plot(described.history):
            click.echo(line)
        samples = sample_history(described.history)
        if samples:
            click.echo("\nsamples while training (temperature 0.8, the run's seed):")
            for line in samples:
                click.echo(line)
    else:
        click.echo(
            "no training curves: the model file is not in a run directory with metrics.jsonl"
        )
