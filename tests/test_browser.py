"""The HTML reports in a real browser: headless Chromium renders the text and the
chart. Skipped where no Chromium is installed (.ci/run installs Debian's)."""

import shutil
import struct
import subprocess
import zlib

import pytest
from click.testing import CliRunner
from test_render import parse

from charrnn.cli import cli

BROWSER = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium found")


def browser(tmp_path, *args: str) -> str:
    command = [
        BROWSER,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, the decompressed scanlines) of a PNG: just enough to tell
    a rendered page from a blank one."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat, at = b"", 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            idat += data[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, zlib.decompress(idat)


def test_reports_render_in_chromium(tiny_run, tmp_path):
    run = str(tiny_run[0])
    report, curves = tmp_path / "report.html", tmp_path / "info.html"
    runner = CliRunner()
    text = "First Citizen:\nSpeak, speak.\n"
    result = runner.invoke(cli, ["score", "--model", run, "--html", str(report), text])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["info", run, "--html", str(curves)])
    assert result.exit_code == 0, result.output

    dom = browser(tmp_path, "--dump-dom", report.as_uri())
    spans = parse(dom).spans
    assert "".join(s["text"] for s in spans).replace("↵", "\n") == text
    assert spans[0]["attrs"]["data-tip"].startswith("#0 'F'  p = ")  # the script ran
    assert all("background:#" in s["attrs"]["style"] for s in spans)

    shot = tmp_path / "report.png"
    browser(tmp_path, f"--screenshot={shot}", "--window-size=1000,700", report.as_uri())
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1000, 700) and shot.stat().st_size > 10_000
    assert len(set(pixels)) > 50  # not one flat colour

    dom = browser(tmp_path, "--dump-dom", curves.as_uri())
    assert "<svg" in dom and 'class="val_loss"' in dom and "Training curves" in dom
