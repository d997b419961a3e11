"""`charrnn sample` and `charrnn score`."""

from __future__ import annotations

import dataclasses
import json
import sys

import click

from .. import api
from ..config import AdaptConfig, SampleConfig
from ..views.figures import SCORE_HEADER, score_pairs, score_row
from .base import (
    ESCAPES_HELP,
    MODEL_OPTION,
    QUIET_OPTION,
    adapt_keywords,
    cli,
    echo_err,
    echo_note,
    html_option,
    is_colored,
    load_model_arg,
    print_colored,
    stdout_console,
    unescape,
    write_html,
)
from .options import config_from, config_options, given_options


@cli.command()
@MODEL_OPTION
@click.option(
    "--prime",
    default="",
    help="Text the sample starts with (it is printed too). " + ESCAPES_HELP,
)
@config_options(SampleConfig)
@click.option(
    "--separator", default="\n\n", show_default=repr("\n\n"), help="Printed between samples."
)
@click.option(
    "--skip-unknown",
    is_flag=True,
    help="Drop prime characters the model has never seen, with a warning (default: error).",
)
@click.option(
    "--beam",
    type=click.IntRange(1),
    default=None,
    help="Print the most probable continuation a width-K beam search finds (with --length "
    "and --stop) instead of a random one; not with -n, -t, --top-k or --top-p.",
)
@click.option(
    "--check-copy",
    "copy_corpus",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[CORPUS]",
    help="After the samples, report on stderr how much of each (the prime excluded) occurs "
    "verbatim in CORPUS: the longest such span and the share of its 20-character "
    "windows found [CORPUS default: the model's training text, when it records one].",
)
@click.option(
    "--adapt-to",
    "adapt_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="First read FILE with dynamic evaluation, the model learning from it as it reads "
    "('-' = stdin), then sample from the adapted weights, going on from where FILE ends "
    "(a --prime follows FILE's text): text in FILE's style, in seconds and without a run "
    "directory. The model file is not changed.",
)
@config_options(AdaptConfig)
@click.option(
    "--save-adapted",
    "adapted_out",
    type=click.Path(dir_okay=False),
    help="With --adapt-to: also write the adapted model to OUT (a model file, .safetensors).",
)
@html_option("Also write a self-contained HTML report of the samples coloured by surprisal.")
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="BLAS threads for each step [default: the fastest count, timed while sampling; "
    "more threads help only while the cores are idle].",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per sample: its number, seed, prime, settings and text (with "
    '--beam: beam, prime, text and log_prob; with --check-copy: a "copy" object).',
)
@QUIET_OPTION
def sample(
    model_path,
    prime,
    separator,
    skip_unknown,
    beam,
    copy_corpus,
    adapt_file,
    adapted_out,
    html_file,
    threads,
    as_json,
    quiet,
    **options,
):
    """Generate text from a model; it streams to stdout as it is produced.

    Ctrl-C stops it, keeping what was printed (exit code 130). With --beam the
    text is the likeliest continuation found, not a random one; its
    log-probability (natural log, given the prime) goes to stderr.
    """
    adaptation = given_options(AdaptConfig, options, "--adapt-to", adapt_file is not None)
    if adapted_out is not None and adapt_file is None:
        raise click.UsageError("--save-adapted goes with --adapt-to")
    if beam is not None:
        _refuse_with_beam(config_from(SampleConfig, options))
    model = load_model_arg(model_path)
    if adapt_file is not None:
        model = _adapted(model, adapt_file, adapted_out, adaptation)
    corpus = None if copy_corpus is None else model.training_text(copy_corpus)
    settings = api.sample_settings(**{k: v for k, v in options.items() if v is not None})
    if beam is None and options["seed"] is None:
        echo_note(f"seed: {settings.seed}")
    prime = unescape(prime)
    if skip_unknown:
        prime, dropped = model.known_prime(prime)
        if dropped:
            echo_err(
                "warning: dropped prime character(s) the model has never seen: "
                + ", ".join(repr(c) for c in dropped[:10])
            )
    if beam is not None:
        records, pieces = _beam_text(model, prime, settings, beam, threads, as_json)
    else:
        records, pieces = _sampled_texts(model, prime, settings, separator, threads, as_json)
    if corpus is not None:
        reports = model.check_copies(["".join(piece[1:]) for piece in pieces], corpus)
        for record, report in zip(records, reports):
            record["copy"] = report.to_dict()
        if not as_json:
            _print_copy_table(corpus, reports)
    for record in records:
        click.echo(json.dumps(record, ensure_ascii=False))
    if html_file:
        about = [("model", str(model.path)), ("prime", repr(prime))]
        if beam is not None:
            about += [("beam width", str(beam))]
        else:
            about += [
                ("temperature", f"{settings.temperature:g}"),
                ("top-k / top-p", f"{settings.top_k} / {settings.top_p:g}"),
                ("seed", str(settings.seed)),
            ]
        about.append(("note", "surprisal is the model's own, at temperature 1"))
        sections = [
            (f"sample {n + 1}", model.analyze("".join(piece))) for n, piece in enumerate(pieces)
        ]
        from ..views.html import surprisal_report

        write_html(html_file, surprisal_report("charrnn sample", sections, about))


def _adapted(model, adapt_file, adapted_out, adaptation):
    """The model after reading --adapt-to's file (saved to --save-adapted's OUT)."""
    text = sys.stdin.read() if adapt_file == "-" else api.read_text(adapt_file)
    echo_note(f"adapting to {adapt_file} ({len(text):,} characters)...")
    adapted = model.adapt_to(text, name=adapt_file, **adaptation)
    reading = adapted.info["adapted"]
    if reading["chars"]:
        echo_note(
            f"adapted: read {reading['chars']:,} characters at "
            f"{reading['nats_per_char']:.4f} nats/char"
        )
    if adapted_out is not None:
        echo_note(f"adapted model: {adapted.save(adapted_out)}")
    return adapted


def _refuse_with_beam(settings: SampleConfig) -> None:
    """--beam decides the text itself: options about drawing it contradict it."""
    ctx = click.get_current_context()
    if settings.num_samples > 1:
        raise click.UsageError("--beam gives one text; it takes no -n/--num-samples")
    if settings.top_k or settings.top_p < 1.0:
        raise click.UsageError("--beam keeps every character in play; it takes no --top-k/--top-p")
    if ctx.get_parameter_source("temperature") != click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--beam picks the likeliest text; it takes no -t/--temperature")


def _print_copy_table(corpus: str, reports) -> None:
    """The copy check as a small table on stderr."""
    echo_err(f"copy check against {corpus} (generated text only):")
    echo_err(f"{'sample':>8} {'chars':>7} {'longest':>8}  {reports[0].window}-char windows found")
    for number, report in enumerate(reports, start=1):
        share = report.window_share
        found = (
            "- (shorter than a window)"
            if share is None
            else f"{share:.1%} ({report.windows_found}/{report.windows})"
        )
        echo_err(f"{number:>8} {report.chars:>7} {report.longest:>8}  {found}")
    for number, report in enumerate(reports, start=1):
        if report.longest:
            echo_err(f"longest span of sample {number}: {report.longest_text!r}")


def _beam_text(model, prime, settings, width, threads, as_json):
    """Run the beam search and print its text (or leave a JSON record to print)."""
    result = model.beam(prime, width, length=settings.length, stop=settings.stop, threads=threads)
    chars = len(result.text)
    echo_note(f"beam {width}: log-probability {result.log_prob:.4f} nats over {chars} character(s)")
    pieces = [[prime, result.text]]
    if as_json:
        record = {"beam": width, "prime": prime, "text": prime + result.text}
        return [{**record, "log_prob": result.log_prob}], pieces
    sys.stdout.write(prime + result.text + "\n")
    sys.stdout.flush()
    return [], pieces


def _sampled_texts(model, prime, settings, separator, threads, as_json):
    """Draw the samples, streaming them to stdout (or leaving JSON records to print):
    (records, per sample the list of its pieces, the prime first)."""
    num_samples = settings.num_samples
    steps = model.stream(prime, threads=threads, **dataclasses.asdict(settings))
    out = sys.stdout
    pieces = [[prime] for _ in range(num_samples)]
    if num_samples == 1 and not as_json:  # streamed as it is made
        out.write(prime)
        for chars in steps:
            out.write(chars[0])
            pieces[0].append(chars[0])
            if chars[0] == "\n":
                out.flush()
        out.write("\n")
        out.flush()
        return [], pieces
    for chars in steps:
        for piece, char in zip(pieces, chars):
            piece.append(char)
    if as_json:
        records = [
            {
                "sample": number,
                "seed": settings.seed,
                "prime": prime,
                "settings": dataclasses.asdict(settings),
                "text": "".join(piece),
            }
            for number, piece in enumerate(pieces, start=1)
        ]
        return records, pieces
    out.write(separator.join("".join(piece) for piece in pieces) + "\n")
    out.flush()
    return [], pieces


def _preview(text: str, width: int = 40) -> str:
    flat = text.replace("\n", "\\n").replace("\t", "\\t")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@cli.command()
@click.argument("texts", nargs=-1)
@MODEL_OPTION
@click.option(
    "--lines",
    "lines_file",
    type=click.File("r", encoding="utf-8"),
    help="Score each line of FILE as its own text ('-' = stdin).",
)
@click.option(
    "--file",
    "doc_file",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Score FILE as one document, the state carried throughout ('-' = stdin).",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Score a long document as one stream (slower; parallel streams differ "
    "by < 0.001 bits/char).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Characters the model has never seen are an error (by default they are skipped "
    "and counted).",
)
@click.option(
    "--adapt",
    is_flag=True,
    help="Dynamic evaluation: the model learns from each text as it reads it (one update "
    "per --adapt-segment characters, each character scored before any update that has seen "
    "it; each text from the trained weights; the model file is not changed). Several times "
    "slower; --show, --top and --html show the adapted predictions.",
)
@config_options(AdaptConfig)
@click.option(
    "--show",
    is_flag=True,
    help="Print each text coloured by surprisal (bits) per character, with a legend.",
)
@click.option(
    "--top",
    type=click.IntRange(1),
    help="Show the model's K most likely next characters at each position.",
)
@click.option(
    "--at",
    "at_position",
    type=click.IntRange(0),
    help="With --top: only this position (0 = the first character).",
)
@html_option("Write a self-contained HTML report: coloured text, per-character tooltips.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='One JSON object per text, each with "kind": "text".',
)
@click.option(
    "--total",
    "with_total",
    is_flag=True,
    help='With --json: a last object with "kind": "total" summing all texts '
    "(the table shows a total row whenever there are several texts).",
)
@QUIET_OPTION
def score(
    texts,
    model_path,
    lines_file,
    doc_file,
    exact,
    strict,
    adapt,
    show,
    top,
    at_position,
    html_file,
    as_json,
    with_total,
    quiet,
    **options,
):
    """Score TEXTS: log-probability, nats and bits per character, perplexity.

    Each argument is one text (\\n in it is a newline, \\t a tab, \\\\ a
    backslash). With no TEXTS, --lines or --file, reads one text per line from
    stdin. --show, --top and --html show what the model expected at each
    character (with --json: a "per_char" list per text). Colour follows the
    terminal; NO_COLOR=1 turns it off, FORCE_COLOR=1 on.
    """
    if at_position is not None and not top:
        raise click.UsageError("--at goes with --top K")
    if with_total and not as_json:
        raise click.UsageError("--total goes with --json")
    adaptation = adapt_keywords(options, adapt)
    items = _texts_to_score(texts, lines_file, doc_file)
    model = load_model_arg(model_path)
    labels = [doc_file if kind == "file" else _preview(text) for kind, text in items]
    if doc_file is not None:
        items[-1] = ("file", sys.stdin.read() if doc_file == "-" else api.read_text(doc_file))
    everything = "".join(text for _, text in items)
    if strict:
        model.check_known(everything)
    results = model.score([text for kind, text in items if kind != "file"], **adaptation)
    if doc_file is not None:
        results.append(model.score(items[-1][1], exact=exact, **adaptation))
    totals = api.total(results)
    analyses, positions = None, None
    if show or top or html_file:
        top_k = max(top or 0, 5)
        analyses = [model.analyze(text, top_k, **adaptation) for _, text in items]
        positions = [_positions(a, at_position) for a in analyses]
    if html_file:
        _write_score_html(html_file, model, labels, analyses, totals, adaptation)
    details = analyses if (show or top) else None
    if as_json:
        shown = [label if kind == "file" else text for label, (kind, text) in zip(labels, items)]
        totals_shown = totals if with_total else None
        _print_score_json(shown, results, totals_shown, details, positions, top, adaptation)
    else:
        if details:
            _print_details(analyses, labels, positions, show, top)
        _print_score_table(labels, results, totals)
    if totals.unknown_chars:
        unknown = model.vocab.unknown_chars(everything)
        echo_err(
            f"warning: skipped {totals.unknown_chars} character(s) the model has never "
            f"seen: {', '.join(repr(c) for c in unknown[:10])}"
        )


def _texts_to_score(texts, lines_file, doc_file) -> list[tuple[str, str]]:
    """(kind, text) for each text to score: the arguments, the lines of --lines (or of
    stdin when nothing else is given), and a last ("file", "") for --file, read once
    the model has loaded."""
    items = [("arg", unescape(t)) for t in texts]
    if lines_file is None and doc_file is None and not texts:
        if sys.stdin.isatty():
            raise click.UsageError("give TEXTS, --lines FILE, --file FILE, or pipe text in")
        lines_file = sys.stdin
    if lines_file is not None:
        items += [("line", line.rstrip("\r\n")) for line in lines_file]
    if doc_file is not None:
        items.append(("file", ""))
    return items


def _write_score_html(path, model, labels, analyses, totals, adaptation) -> None:
    from ..views.html import surprisal_report

    about = [("model", str(model.path)), ("texts", str(len(labels)))]
    if adaptation:
        about.append(("adapted", _adapt_words(adaptation)))
    if len(labels) > 1:
        about += [(f"total: {k}", v) for k, v in score_pairs(totals)]
    write_html(path, surprisal_report("charrnn score", list(zip(labels, analyses)), about))


def _adapt_words(adaptation: dict) -> str:
    """The adaptation settings in force, for a report."""
    settings = api.adapt_settings(**adaptation)
    return (
        f"dynamic evaluation, rate {settings.adapt_rate:g} per {settings.adapt_segment} "
        f"characters, decay {settings.adapt_decay:g}"
    )


def _print_score_json(texts, results, totals, analyses, positions, top, adaptation) -> None:
    """One JSON object per text (with a "per_char" list when `analyses` are given),
    then one for `totals` when given; with `adaptation`, each says its settings."""
    adapted = {}
    if adaptation:
        adapted = {"adapt": dataclasses.asdict(api.adapt_settings(**adaptation))}
    for index, (text, result) in enumerate(zip(texts, results)):
        record = {"kind": "text", "text": text, **result.to_dict(), **adapted}
        if analyses:
            record["per_char"] = analyses[index].records(positions[index], top or 0)
        click.echo(json.dumps(record, ensure_ascii=False))
    if totals is not None:
        click.echo(json.dumps({"kind": "total", "texts": len(results), **totals.to_dict()}))


def _print_score_table(labels, results, totals) -> None:
    click.echo(SCORE_HEADER)
    rows = list(zip(labels, results))
    if len(results) > 1:
        rows.append(("(total)", totals))
    for label, result in rows:
        click.echo(score_row(result, label))


# --------------------------------------------------------------------------- inspect / info


def _positions(analysis, at_position) -> list[int]:
    if at_position is None:
        return list(range(len(analysis.text)))
    if at_position >= len(analysis.text):
        raise click.BadParameter(
            f"position {at_position} is past the end of a text of {len(analysis.text)} "
            "scored character(s)",
            param_hint="--at",
        )
    return [at_position]


def _print_details(analyses, labels, positions, show, top) -> None:
    from ..views.terminal import score_line, surprisal_heatmap, surprisal_legend, top_table

    console = stdout_console()
    color = is_colored(console)
    for analysis, label, where in zip(analyses, labels, positions):
        if len(analyses) > 1:
            click.echo(f"== {label}")
        if show:
            print_colored(console, color, surprisal_heatmap(analysis, color))
            click.echo(score_line(analysis))
        if top:
            console.print(top_table(_trim_top(analysis, top), where))
    if show:
        print_colored(console, color, surprisal_legend(color))
    click.echo()


def _trim_top(analysis, top):
    return dataclasses.replace(
        analysis,
        top_chars=[row[:top] for row in analysis.top_chars],
        top_probs=analysis.top_probs[:, :top],
    )
