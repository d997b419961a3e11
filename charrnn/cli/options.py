"""Click options generated from the config dataclasses (charrnn.config.setting).

A field's default, help text, bounds and choices are declared once, next to
the field; this module turns them into options, and option values back into
a config.
"""

from __future__ import annotations

import dataclasses

import click


def _fields(cls, skip: tuple[str, ...] = ()) -> list[dataclasses.Field]:
    return [
        f for f in dataclasses.fields(cls) if f.metadata.get("cli", False) and f.name not in skip
    ]


def _click_type(f: dataclasses.Field, meta: dict):
    if meta["choices"]:
        return click.Choice(meta["choices"])
    if meta["path"]:
        return click.Path(dir_okay=False)
    kind = meta["kind"] or type(f.default)
    bounds = {
        "min": meta["minimum"],
        "max": meta["maximum"],
        "min_open": meta["min_open"],
        "max_open": meta["max_open"],
    }
    if kind is int and (meta["minimum"] is not None or meta["maximum"] is not None):
        return click.IntRange(meta["minimum"], meta["maximum"])
    if kind is float and (meta["minimum"] is not None or meta["maximum"] is not None):
        return click.FloatRange(**bounds)
    return kind


class AliasedOption(click.Option):
    """An option that also answers to an earlier name, which --help no longer shows."""

    def __init__(self, *args, alias: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.alias = alias
        if alias:
            self.opts.append(alias)

    def get_help_record(self, ctx):
        if not self.alias:
            return super().get_help_record(ctx)
        self.opts.remove(self.alias)
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts.append(self.alias)


def option_for(f: dataclasses.Field, default=dataclasses.MISSING, help_suffix: str = ""):
    """The click option --field-name for one config field (its value arrives under the
    field's name)."""
    meta = f.metadata
    name = "--" + f.name.replace("_", "-")
    help_text = meta["help"] + help_suffix
    default = f.default if default is dataclasses.MISSING else default
    declarations = [name] + ([meta["short"]] if meta["short"] else []) + [f.name]
    if meta["flag"]:
        return click.option(*declarations, is_flag=True, default=default, help=help_text)
    if meta["negatable"]:
        declarations = [f"{name}/--no-{name[2:]}", f.name]
        return click.option(*declarations, default=default, show_default=True, help=help_text)
    if meta["default_text"]:
        help_text += f" [default: {meta['default_text']}]"
    return click.option(
        *declarations,
        cls=AliasedOption,
        alias=meta["alias"],
        type=_click_type(f, meta),
        default=default,
        show_default=default is not None and not meta["default_text"],
        help=help_text,
    )


def config_options(cls, skip: tuple[str, ...] = (), overrides: dict | None = None):
    """A decorator adding an option per command-line field of `cls`, in field order.

    `overrides` maps a field name to (default, help suffix) for a command whose
    default differs from the field's (e.g. None for "decided by the library").
    """
    overrides = overrides or {}

    def decorate(func):
        for f in reversed(_fields(cls, skip)):
            default, suffix = overrides.get(f.name, (dataclasses.MISSING, ""))
            func = option_for(f, default, suffix)(func)
        return func

    return decorate


def field_names(cls, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(f.name for f in _fields(cls, skip))


def config_from(cls, options: dict, **values):
    """An instance of `cls` from the command's options (its fields' names), plus `values`;
    options left at None take the field's default."""
    given = {name: options[name] for name in field_names(cls) if options.get(name) is not None}
    return cls(**{**given, **values})


def pop_config(cls, options: dict, skip: tuple[str, ...] = (), **values):
    """Like config_from, removing the fields' options from `options`."""
    taken = {name: options.pop(name) for name in field_names(cls, skip) if name in options}
    return config_from(cls, taken, **values)


def given_options(cls, options: dict, goes_with: str, switched_on: bool) -> dict:
    """Remove `cls`'s fields' options from `options` and return those the user gave
    (name -> value); giving one without the switch `goes_with` is a usage error."""
    ctx = click.get_current_context()
    given = {}
    for name in field_names(cls):
        value = options.pop(name, None)
        if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT):
            given[name] = value
    if given and not switched_on:
        raise click.UsageError(f"--{next(iter(given)).replace('_', '-')} goes with {goes_with}")
    return given
