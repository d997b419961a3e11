"""The documentation cannot drift: the command reference is the CLI's, the README stays
short and keeps the test command CI runs, and every page is in the site's nav."""

import re
from pathlib import Path

from charrnn.cli import cli
from charrnn.cli.reference import COMMAND, render

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 300


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_command_reference_is_what_the_cli_defines():
    page = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert page == render(), f"docs/reference.md is out of date: run `{COMMAND}`"


def test_the_reference_names_every_command_and_option():
    page = render()
    assert COMMAND in page.split("\n## ", 1)[0]  # the page says how it is made
    for name, command in cli.commands.items():
        assert f"## `charrnn {name}`" in page
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-"):
                    assert f"`{opt}`" in page, (name, opt)


def test_the_reference_does_not_depend_on_the_terminal(monkeypatch):
    wide = render()
    monkeypatch.setenv("COLUMNS", "20")
    monkeypatch.setenv("CHARRNN_MODEL", "/elsewhere/model.safetensors")
    assert render() == wide


def test_the_readme_is_short():
    lines = len(_readme().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_ci_runs_the_readme_test_command():
    section = _readme().split("## Run the tests", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)```", section, re.S).group(1)
    commands = [line.strip() for line in block.splitlines() if line.strip()]
    assert commands, "no test command in the README's 'Run the tests'"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in commands:
        for part in command.split(" && "):
            # .ci/run adds --quiet to pip and runs it as `python -m pip`.
            words = part.split()
            if words[0] == "pip":
                words = ["python", "-m", "pip", words[1], "--quiet", *words[2:]]
            assert " ".join(words) in ci, f".ci/run does not run the README's `{part}`"


def _nav_pages() -> list[str]:
    """The page paths named in mkdocs.yml's nav (`- Title: page.md` or `- page.md`)."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:", 1)[1]
    return re.findall(r"^\s+- (?:[^\n]*?: )?(\S+\.md)\s*$", nav, re.M)


def test_every_page_is_in_the_nav():
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    nav = _nav_pages()
    assert sorted(set(nav)) == pages, {
        "not in the nav": sorted(set(pages) - set(nav)),
        "in the nav, no such page": sorted(set(nav) - set(pages)),
    }
    assert len(nav) == len(set(nav))
