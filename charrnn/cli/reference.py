"""The command reference: the click command tree rendered as Markdown (docs/reference.md).

`python -m charrnn.cli.reference > docs/reference.md` rewrites the page; the output
depends only on the click definitions (no terminal width, no environment).
"""

from __future__ import annotations

import re

import click

from . import cli

COMMAND = "python -m charrnn.cli.reference > docs/reference.md"
_DEFAULT_IN_HELP = re.compile(r"\s*\[default: ([^\]]*)\]")
_UNSET = getattr(click.core, "UNSET", None)  # click >= 8.3's "no default"
_MARKDOWN_SPECIAL = re.compile(r"([\\*_\[\]|>#])")


def _escape(text: str) -> str:
    """Text as Markdown shows it literally; `code spans` stay code."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(part)
        else:
            escaped = part.replace("&", "&amp;").replace("<", "&lt;")
            out.append(_MARKDOWN_SPECIAL.sub(r"\\\1", escaped))
    return "".join(out)


def _cell(text: str) -> str:
    """Escaped text for one table cell (on one line)."""
    return _escape(" ".join(text.split()))


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _paragraphs(help_text: str) -> list[str]:
    """A docstring's paragraphs; click's \\f cuts the rest and \\b keeps line breaks."""
    help_text = help_text.split("\f", 1)[0].strip()
    paragraphs = []
    for block in re.split(r"\n\s*\n", help_text):
        lines = [line.strip() for line in block.strip().splitlines()]
        if lines and lines[0] == "\b":
            paragraphs.append("  \n".join(_escape(line) for line in lines[1:]))
        elif lines:
            paragraphs.append(_escape(" ".join(lines)))
    return paragraphs


def _first_paragraph(help_text: str | None) -> str:
    found = _paragraphs(help_text or "")
    return found[0] if found else ""


def _range(kind: click.types._NumberRangeBase) -> str:
    low, high = kind.min, kind.max
    if low is None:
        return f"x{'<' if kind.max_open else '<='}{high}"
    if high is None:
        return f"x{'>' if kind.min_open else '>='}{low}"
    return f"{low}{'<' if kind.min_open else '<='}x{'<' if kind.max_open else '<='}{high}"


def _value(param: click.Parameter) -> str:
    """What an option or argument takes: its kind, choices and range."""
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    kind = param.type
    if isinstance(kind, click.Choice):
        text = " \\| ".join(_code(str(choice)) for choice in kind.choices)
    elif isinstance(kind, click.types._NumberRangeBase):
        number = "integer" if isinstance(kind, click.IntRange) else "number"
        text = f"{number}, {_code(_range(kind))}"
    elif isinstance(kind, click.Path):
        text = {(True, False): "file", (False, True): "directory"}.get(
            (kind.file_okay, kind.dir_okay), "path"
        )
    elif isinstance(kind, click.File):
        text = "file"
    else:
        text = {"integer": "integer", "float": "number", "text": "text"}.get(kind.name, kind.name)
    if getattr(kind, "allow_dash", False) or isinstance(kind, click.File):
        text += " (`-` = stdin)"
    if param.metavar:
        text = f"{_code(param.metavar)}: {text}"
    if getattr(param, "_flag_needs_value", False):  # --check-copy alone, or with a value
        text += ", the value optional"
    if param.multiple or param.nargs == -1:
        text += ", repeatable"
    if param.envvar:
        text += f"; env {_code(str(param.envvar))}"
    return text


def _default(param: click.Parameter, help_text: str) -> str:
    """The default: as the help text words it, else the value click would show."""
    worded = _DEFAULT_IN_HELP.search(help_text)
    if worded:
        return _cell(worded.group(1))
    default = param.default
    if default is None or default is _UNSET or callable(default):
        return ""
    if isinstance(param, click.Option):
        if param.is_flag and param.secondary_opts:
            return _code((param.opts if default else param.secondary_opts)[0])
        if param.is_flag:
            return ""
    if isinstance(default, str):
        return _code(default.encode("unicode_escape").decode("ascii")) if default else '`""`'
    return _code(str(default))


def _option_names(param: click.Option) -> str:
    names = sorted(param.opts, key=lambda name: (name.startswith("--"), name))
    text = ", ".join(_code(name) for name in names)
    if param.secondary_opts:
        text += " / " + ", ".join(_code(name) for name in param.secondary_opts)
    return text


def _usage(path: list[str], command: click.Command) -> str:
    pieces = [*path, "[OPTIONS]"]
    for param in command.params:
        if isinstance(param, click.Argument):
            name = param.metavar or param.name.upper()
            if param.nargs == -1:
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
    if isinstance(command, click.Group):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _command_section(path: list[str], command: click.Command) -> list[str]:
    lines = [f"## `{' '.join(path)}`", "", "```", _usage(path, command), "```", ""]
    for paragraph in _paragraphs(command.help or ""):
        lines += [paragraph, ""]
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    if arguments:
        lines += ["| Argument | Takes | Required |", "|---|---|---|"]
        for param in arguments:
            name = _code(param.metavar or param.name.upper())
            required = "yes" if param.required else "no"
            lines.append(f"| {name} | {_value(param)} | {required} |")
        lines.append("")
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    if options:
        lines += ["| Option | Takes | Default | What it does |", "|---|---|---|---|"]
        for param in options:
            help_text = param.help or ""
            what = _cell(_DEFAULT_IN_HELP.sub("", help_text))
            lines.append(
                f"| {_option_names(param)} | {_value(param)} | {_default(param, help_text)} "
                f"| {what} |"
            )
        lines.append("")
    return lines


def _commands(group: click.Group) -> list[tuple[str, click.Command]]:
    ctx = click.Context(group, info_name="charrnn")
    found = []
    for name in sorted(group.list_commands(ctx)):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            found.append((name, command))
    return found


def render(group: click.Group = cli, prog: str = "charrnn") -> str:
    """The whole reference page as Markdown."""
    commands = _commands(group)
    lines = [
        "# Command reference",
        "",
        "<!-- Generated from the click definitions in charrnn/cli/; do not edit by hand. -->",
        "",
        "This page is generated from the command-line definitions themselves, so it says "
        f"what the installed `{prog}` accepts. After changing an option, regenerate it with "
        f"`{COMMAND}` (a test fails until the page matches).",
        "",
        f"Every command also takes `-h` / `--help`. `python -m charrnn` is the same as `{prog}`.",
        "",
        "| Command | What it does |",
        "|---|---|",
    ]
    for name, command in commands:
        anchor = f"{prog}-{name}"
        lines.append(f"| [`{prog} {name}`](#{anchor}) | {_first_paragraph(command.help)} |")
    lines.append("")
    lines += _command_section([prog], group)
    for name, command in commands:
        lines += _command_section([prog, name], command)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    click.echo(render(), nl=False)


if __name__ == "__main__":
    main()
