"""One owner per rule (issue 23): config.py only declares settings, views/ draw what
they are given, a CharRNN's weights are described once (model/layout.py)."""

import ast
import re
from pathlib import Path

from test_layout import PACKAGE, ROOT

CONFIG = PACKAGE / "config.py"
CELL_NAMES = {"rnn", "lstm", "gru"}
# config.py: the `setting` helper and the one-line shortener of its error messages;
# in a settings dataclass, its checks (bounds, choices) and its serialisation.
CONFIG_FUNCTIONS = {"setting", "_shown"}
CONFIG_METHODS = {"__post_init__", "to_dict"}
# Reading and writing, which views leave to their callers.
IO_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "load_model"}


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def is_frozen_dataclass(node: ast.ClassDef) -> bool:
    return any(
        isinstance(d, ast.Call)
        and getattr(d.func, "id", None) == "dataclass"
        and any(k.arg == "frozen" and getattr(k.value, "value", None) is True for k in d.keywords)
        for d in node.decorator_list
    )


def test_config_only_declares_settings():
    """Frozen dataclasses of `setting` fields, the constants they show (defaults, bounds,
    choices), and the `setting` helper: no rule that decides or computes anything."""
    wrong = []
    for node in tree(CONFIG).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            if any(isinstance(n, ast.Call) for n in ast.walk(node)):
                wrong.append(f"line {node.lineno}: a constant computed by a call")
            continue
        if isinstance(node, ast.FunctionDef) and node.name in CONFIG_FUNCTIONS:
            continue
        if isinstance(node, ast.ClassDef) and is_frozen_dataclass(node):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name not in CONFIG_METHODS:
                    wrong.append(f"{node.name}.{item.name}")
            continue
        wrong.append(f"line {node.lineno}: {type(node).__name__} {getattr(node, 'name', '')}")
    assert not wrong, wrong


def test_config_is_read_only_through_its_declarations():
    """Every module-level constant of config.py is used by a declaration there (a field's
    default, bounds, choices or help), or is a CLI option's default (GRADIENT_DISTANCE):
    a constant only some other module reads belongs in that module."""
    module = tree(CONFIG)
    constants = {
        t.id
        for node in module.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    used = {
        n.id
        for node in module.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef))
        for n in ast.walk(node)
        if isinstance(n, ast.Name)
    }
    assert constants - used <= {"GRADIENT_DISTANCE"}, constants - used


def test_views_neither_read_files_nor_import_training():
    """views/ draw what they are given (views/__init__.py): the reading is the caller's."""
    wrong = []
    for path in sorted((PACKAGE / "views").glob("*.py")):
        name = str(path.relative_to(ROOT))
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called in IO_CALLS:
                    wrong.append(f"{name}:{node.lineno} calls {called}")
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ["charrnn", "views"][: 3 - node.level]
                imported = ".".join(base + ([node.module] if node.module else []))
                if imported.startswith("charrnn.training"):
                    wrong.append(f"{name}:{node.lineno} imports {imported}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "charrnn.training"
            ):
                wrong.append(f"{name}:{node.lineno} imports {node.module}")
    assert not wrong, wrong


def test_one_table_of_gates_and_one_spelling_of_the_weights():
    """A per-cell table of numbers or gate names (rnn, lstm, gru) is layout.GATES alone,
    and the weights' names (torch's state_dict keys) are written only in layout.py."""
    layout = PACKAGE / "model" / "layout.py"
    weight_name = re.compile(
        r"^(rnn\.(weight|bias)_|embedding\.weight|head\.(head|tail|weight|bias|order))"
    )
    tables, names = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Dict) and all(isinstance(k, ast.Constant) for k in node.keys):
                keys = {k.value for k in node.keys}
                plain = all(isinstance(v, (ast.Constant, ast.Tuple)) for v in node.values)
                if keys == CELL_NAMES and plain:
                    tables.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if path != layout and isinstance(node, (ast.Constant, ast.JoinedStr)):
                text = node.value if isinstance(node, ast.Constant) else ast.unparse(node)[2:]
                if isinstance(text, str) and weight_name.match(text):
                    names.append(f"{path.relative_to(ROOT)}:{node.lineno} {text!r}")
    assert [t.split(":")[0] for t in tables] == ["charrnn/model/layout.py"], tables
    assert not names, names
