"""`charrnn inspect` and `charrnn info`: what the model sees, and how a run went."""

from __future__ import annotations

import json
import sys

import click
from click.core import ParameterSource

from .. import api
from ..config import GRADIENT_DISTANCE, AdaptConfig
from ..errors import CharRNNError
from .base import (
    MODEL_OPTION,
    QUIET_OPTION,
    adapt_keywords,
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
from .options import config_options


def _read_one_text(text, text_file) -> str:
    if text is not None and text_file is not None:
        raise click.UsageError("give TEXT or --file, not both")
    if text_file is not None:
        return sys.stdin.read() if text_file == "-" else api.read_text(text_file)
    if text is not None:
        return unescape(text)
    if sys.stdin.isatty():
        raise click.UsageError("give TEXT, --file FILE, or pipe text in")
    return sys.stdin.read()


def _states(model, spec: str) -> tuple[str, ...]:
    """--state, checked against the model's cell."""
    try:
        return model.states(spec)
    except CharRNNError as exc:
        raise click.BadParameter(str(exc), param_hint="--state") from None


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
CELLS_ONLY = {
    "units": "--units",
    "state_spec": "--state",
    "find": "--find",
    "count": "--count",
    "adapt": "--adapt",
}


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
    "--adapt",
    is_flag=True,
    help="--cells: read the text with dynamic evaluation, the weights learning from it "
    "as they go (as score --adapt).",
)
@config_options(AdaptConfig)
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
    adapt,
    distance,
    html_file,
    as_json,
    quiet,
    **options,
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
    adaptation = adapt_keywords(options, adapt)
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
        adaptation,
        html_file,
        as_json,
    )


def _inspect_cells(
    text,
    model_path,
    text_file,
    units,
    state_spec,
    layer,
    find,
    count,
    adaptation,
    html_file,
    as_json,
) -> None:
    content = _read_one_text(text, text_file)
    model = load_model_arg(model_path)
    states = _states(model, state_spec)
    view = model.units(
        content,
        layer=layer,
        states=states,
        units=_units(units),
        find=find,
        count=count,
        **adaptation,
    )
    activations, shown, matches = view.activations, view.shown, view.matches
    if activations.unknown_chars:
        echo_err(
            f"warning: skipped {activations.unknown_chars} character(s) the model has never seen"
        )
    if view.chosen_by == "feature":
        echo_note(
            f"showing the units that follow {view.feature} most closely in this text "
            f"(|r| {abs(matches[0].r):.2f}); choose with --units N,M or --find FEATURE"
        )
    elif view.chosen_by == "activity":
        echo_note(
            "no unit follows quotes, brackets or the line position closely in this text: "
            "showing the units that vary most; choose with --units N,M or --find FEATURE"
        )
    if html_file:
        from ..views.html import activations_report

        about = _cells_about(model, activations)
        page = activations_report(
            "charrnn inspect", activations, shown, about, matches, view.feature
        )
        write_html(html_file, page)
    if as_json:
        click.echo(json.dumps(_cells_record(view), ensure_ascii=False))
        return
    _print_cells(view)


def _cells_about(model, activations) -> list[tuple[str, str]]:
    config = model.config
    return [
        ("model", str(model.path)),
        ("layer", f"{activations.layer} of {config.layers} ({config.cell}, {config.hidden} units)"),
        ("characters", f"{len(activations.text):,}"),
    ]


def _cells_record(view) -> dict:
    activations = view.activations
    return {
        "text": activations.text,
        "layer": activations.layer,
        "feature": view.feature,
        "chosen_by": view.chosen_by,
        "matches": [{"state": m.state, "unit": m.unit, "r": m.r} for m in view.matches],
        "units": [
            {"state": name, "unit": unit, "values": activations.values[name][:, unit].tolist()}
            for name, unit in view.shown
        ],
    }


def _print_cells(view) -> None:
    from ..views.terminal import (
        activation_heatmap,
        activation_legend,
        activation_title,
        units_table,
        value_range,
    )

    activations = view.activations
    console = stdout_console()
    color = is_colored(console)
    if view.matches:
        console.print(units_table(view.matches, view.feature, activations.layer))
    for name, unit in view.shown:
        click.echo(activation_title(activations, name, unit))
        print_colored(console, color, activation_heatmap(activations, name, unit, color))
    # One legend per value range: sigmoid gates lie in [0, 1], the rest in [-1, 1].
    legends = {value_range(name): name for name, _ in view.shown}
    for name in legends.values():
        print_colored(console, color, activation_legend(name, color))


def _gradient_text(text, text_file, first) -> tuple[str, str]:
    """The text --gradients reads, and where it comes from: TEXT, --file, text piped
    in, else a passage of the first model's training text."""
    if text is not None or text_file is not None:
        return _read_one_text(text, text_file), str(text_file or "TEXT")
    piped = "" if sys.stdin.isatty() else sys.stdin.read()
    if piped:
        return piped, "stdin"
    return first.training_passage()


def _inspect_gradients(text, text_file, model_paths, layer, distance, html_file, as_json):
    models = [load_model_arg(path) for path in model_paths or (None,)]
    labels = [str(path) for path in model_paths] or ["shakespeare (bundled)"]
    content, source = _gradient_text(text, text_file, models[0])
    decays = api.compare_gradients(models, content, distance, layer)
    curves = list(zip(labels, decays))
    for label, decay in curves:
        if decay.unknown_chars:
            echo_err(
                f"warning: {label}: skipped {decay.unknown_chars} character(s) the model "
                "has never seen"
            )
    echo_note(
        f"text: {source}, {len(content):,} characters; the gradient followed back "
        f"k = 1..{decays[0].distance} characters"
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
        record = {"text": content, "source": source, "distance": decays[0].distance}
        click.echo(json.dumps({**record, "models": records}, ensure_ascii=False))
        return
    from ..views.terminal import decay_plot, decay_table

    stdout_console().print(decay_table(curves))
    for line in decay_plot(curves):
        click.echo(line)


@cli.command()
@click.argument("path", type=click.Path(), required=False)
@MODEL_OPTION
@html_option("Write the same as an HTML page with an SVG chart of the losses.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@QUIET_OPTION
@click.pass_context
def info(ctx, path, model_path, html_file, as_json, quiet):
    """Describe a model file or run directory (PATH, or --model as the other commands
    take it): config, vocabulary, parameters, best validation loss, train /
    validation loss over steps, the gradient norm before clipping and the share of
    steps clipped, and the samples drawn while training (the first, a middle one
    and the last; --html shows all), from the run's metrics.jsonl.
    """
    from_command_line = ctx.get_parameter_source("model_path") == ParameterSource.COMMANDLINE
    if path and from_command_line:
        raise click.UsageError("give the model as PATH or as --model, not both")
    described = api.describe(path or model_path)
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
