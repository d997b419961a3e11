"""The package's layers: imports run one way, and the README's code layout is the code's."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "charrnn"
# Lower layers first; a module may import from its own layer, lower ones, and SHARED.
LAYERS = ["text", "model", "inference", "training", "views", "api", "serve", "cli"]
SHARED = {"config", "errors", "atomic", "bundled"}


def layer_of(module: str) -> str | None:
    """'charrnn.training.rundir' -> 'training'; None for the shared top-level modules."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else ""
    if head in SHARED or head in ("", "__init__", "__main__"):
        return None
    return head


def imported_modules(path: Path) -> list[str]:
    """Absolute names of the charrnn modules a file imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name.startswith("charrnn"):
                found.append(name)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("charrnn")]
    return found


def test_imports_run_one_way():
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = layer_of(module)
        for name in imported_modules(path):
            other = layer_of(name)
            if other is None or own is None or other == own:
                continue
            if LAYERS.index(other) > LAYERS.index(own):
                wrong.append(f"{module} imports {name}")
    assert not wrong, wrong
    # The shared modules use no layer at all (config must stay torch-free for --help).
    for name in SHARED:
        layers = {layer_of(n) for n in imported_modules(PACKAGE / f"{name}.py")}
        assert layers <= {None}, (name, layers)


def test_the_readme_code_layout_lists_every_module_once():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Code layout", 1)[1].split("\n## ", 1)[0]
    listed = []
    for row in re.findall(r"^\| (`charrnn/[^|]*) \|", section, re.M):
        for cell in re.findall(r"`([^`]+)`", row):
            listed.append(cell if cell.startswith("charrnn/") else f"charrnn/{cell}")
    modules = sorted(
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if not (p.name == "__init__.py" and p.parent != PACKAGE and p.parent.name != "cli")
    )
    assert sorted(listed) == modules
    assert len(listed) == len(set(listed))
