"""`charrnn inspect` and `charrnn info`: what the model sees, and how a run went."""

from __future__ import annotations

import json
import sys

import click

from ..config import GRADIENT_DISTANCE
from ..errors import CharRNNError
from .base import (
    MODEL_ENV,
    QUIET_OPTION,
    cli,
    echo_err,
    echo_note,
    html_option,
    is_colored,
    load_model_arg,
    model_option,
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


MODELS_OPTION = model_option(
    multiple=True, more_help="; --gradients takes several, to compare them on one chart"
)

# inspect's options that only --cells uses: parameter name -> option
CELLS_ONLY = {"units": "--units", "state_spec": "--state", "find": "--find", "count": "--count"}


@cli.command()
@click.argument("text", required=False)
@MODELS_OPTION
@click.option(
    "--cells",
    is_flag=True,
    help="Show hidden-unit activations (the default).",
)
@click.option(
    "--gradients",
    is_flag=True,
    help="Show how far back the gradient of the loss reaches: the mean norm of "
    "d loss_t / d h_{t-k} (and c_{t-k} for LSTM) for k = 1..--distance, log scale.",
)
@click.option(
    "--file",
    "text_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Read the text from FILE ('-' = stdin).",
)
@click.option("--units", help="--cells: units to show, e.g. 3,17 or 0-7.")
@click.option(
    "--state",
    "state_spec",
    default="h",
    show_default=True,
    help="--cells: what to show: h (hidden), c (LSTM cell state, coloured as tanh c), "
    "gates, or single gates: i,f,g,o (LSTM), r,z,n (GRU); comma-separated.",
)
@click.option(
    "--layer",
    type=int,
    default=-1,
    show_default=True,
    help="Layer to record, or (--gradients) whose state the gradient reaches "
    "(0 = first, -1 = last).",
)
@click.option(
    "--find",
    type=click.Choice(["quotes", "brackets", "line-position"]),
    help="--cells: list the units (of --state) most correlated with this feature of the "
    "text, and show the best ones unless --units is given.",
)
@click.option(
    "--count",
    type=click.IntRange(1),
    default=10,
    show_default=True,
    help="--cells: units listed by --find.",
)
@click.option(
    "--distance",
    type=click.IntRange(1),
    help=f"--gradients: follow the gradient back k = 1..K characters [default: "
    f"{GRADIENT_DISTANCE}, or as far as the text allows].",
)
@html_option("Write a self-contained HTML page of the activations or the gradient chart.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@QUIET_OPTION
@click.pass_context
def inspect(
    ctx,
    text,
    model_paths,
    cells,
    gradients,
    text_file,
    units,
    state_spec,
    layer,
    find,
    count,
    distance,
    html_file,
    as_json,
    quiet,
):
    """See what single units respond to (--cells, the default), or how far back the
    gradient of the loss reaches (--gradients).

    --cells records the activations of one layer while reading TEXT (\\n in it is
    a newline, \\t a tab, \\\\ a backslash), --file, or stdin, and colours the
    text by each unit's activation. --find quotes|brackets|line-position lists the
    units whose activation follows that feature most closely (Pearson r): the
    classic quote-detecting cell. Colour follows the terminal, as for `score
    --show`.

    --gradients follows the gradient of the loss at each position t back to the
    state at t-k, for k = 1..--distance, and plots its mean norm over the
    positions on a log scale: how fast it vanishes (or explodes) with distance.
    Without TEXT, --file or piped text, a passage of the model's training text.
    Give --model several times to compare models on one chart.
    """
    if cells and gradients:
        raise click.UsageError("choose --cells or --gradients, not both")
    if gradients:
        for name, option in CELLS_ONLY.items():
            if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"{option} goes with --cells, not --gradients")
        _inspect_gradients(text, text_file, model_paths, layer, distance, html_file, as_json)
        return
    if distance is not None:
        raise click.UsageError("--distance goes with --gradients")
    if len(model_paths) > 1:
        raise click.UsageError("--cells shows one model; give --model once")
    _inspect_cells(
        text,
        model_paths[0] if model_paths else None,
        text_file,
        units,
        state_spec,
        layer,
        find,
        count,
        html_file,
        as_json,
    )


def _inspect_cells(
    text, model_path, text_file, units, state_spec, layer, find, count, html_file, as_json
) -> None:
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


def _gradient_text(text, text_file, first) -> tuple[str, str]:
    """The text --gradients reads, and where it comes from: TEXT, --file, text piped
    in, else a passage of the first model's training text."""
    from ..inference.gradients import model_passage

    if text is not None or text_file is not None:
        return _read_one_text(text, text_file), str(text_file or "TEXT")
    piped = "" if sys.stdin.isatty() else sys.stdin.read()
    if piped:
        return piped, "stdin"
    return model_passage(first)


def _inspect_gradients(text, text_file, model_paths, layer, distance, html_file, as_json):
    from ..inference.gradients import farthest_distance, gradient_decay

    models = [load_model_arg(path) for path in model_paths or (None,)]
    labels = [str(path) for path in model_paths] or ["shakespeare (bundled)"]
    content, source = _gradient_text(text, text_file, models[0])
    reach = min(farthest_distance(m.vocab, content) for m in models)
    if distance is None and reach >= 1:
        distance = min(GRADIENT_DISTANCE, reach)  # the same distances for every model
    curves = []
    for label, loaded in zip(labels, models):
        try:
            decay = gradient_decay(loaded.model, loaded.vocab, content, distance, layer)
        except CharRNNError as exc:
            raise CharRNNError(f"{label}: {exc}" if len(models) > 1 else str(exc)) from None
        if decay.unknown_chars:
            echo_err(
                f"warning: {label}: skipped {decay.unknown_chars} character(s) the model "
                "has never seen"
            )
        curves.append((label, decay))
    echo_note(
        f"text: {source}, {len(content):,} characters; the gradient followed back "
        f"k = 1..{curves[0][1].distance} characters"
    )
    if html_file:
        from ..views.html import decay_report

        about = [("text", source), ("characters", f"{len(content):,}")]
        about += [
            (
                label,
                f"{m.config.cell}, {m.config.layers} layer(s) x {m.config.hidden} units; {m.path}",
            )
            for label, m in zip(labels, models)
        ]
        write_html(html_file, decay_report("charrnn inspect --gradients", curves, about))
    if as_json:
        records = [
            {"label": label, "model": str(m.path), **decay.to_dict()}
            for (label, decay), m in zip(curves, models)
        ]
        click.echo(
            json.dumps(
                {
                    "text": content,
                    "source": source,
                    "distance": curves[0][1].distance,
                    "models": records,
                },
                ensure_ascii=False,
            )
        )
        return
    from ..views.terminal import decay_plot, decay_table

    stdout_console().print(decay_table(curves))
    for line in decay_plot(curves):
        click.echo(line)


@cli.command()
@click.argument("path", type=click.Path(), required=False, envvar=MODEL_ENV)
@html_option("Write the same as an HTML page with an SVG chart of the losses.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@QUIET_OPTION
def info(path, html_file, as_json, quiet):
    """Describe a model file or run directory: config, vocabulary, parameters,
    best validation loss, train / validation loss over steps, the gradient norm
    before clipping and the share of steps clipped, and the samples drawn while
    training (the first, a middle one and the last; --html shows all), from the
    run's metrics.jsonl. PATH defaults to $CHARRNN_MODEL, else
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
    from ..views.terminal import gradient_norm_plot, info_table, loss_plot, sample_history

    console = stdout_console()
    console.print(info_table(described.rows(), "charrnn info"))
    if described.history:
        for line in loss_plot(described.history):
            click.echo(line)
        gradient_lines = gradient_norm_plot(described.history)
        if gradient_lines:
            click.echo("\ngradient norm before clipping, per validation interval:")
            for line in gradient_lines:
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
