"""`aigcsim report`: a self-contained HTML file with embedded figures and a synthetic banner."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from aigcsim.analysis.report import write_report
from tests.conftest import run_main


def _imgs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


@pytest.mark.parametrize("kind", ["run_dir", "variants_dir", "sweep_dir"])
def test_report_kinds(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    src = request.getfixturevalue(kind)
    path, rep = write_report(src, tmp_path / "r.html")
    text = path.read_text()
    assert rep.warnings == []
    imgs = _imgs(text)
    assert len(imgs) == rep.figures >= 4
    assert all(b.startswith(b"\x89PNG") for b in imgs)
    assert 'id="synthetic-banner"' in text and "<code>cross-attn/default</code>" in text
    assert "config.yaml" in text and "Provenance" in text
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing external
    assert not list(tmp_path.glob("*.partial"))
    if kind == "sweep_dir":
        assert "users.count" in text and "ValueError: boom" in text
        assert "mean_lpips vs users.count" in text


def test_measured_report_has_no_banner(measured_run_dir: Path, tmp_path: Path) -> None:
    path, rep = write_report(measured_run_dir, tmp_path / "m.html")
    text = path.read_text()
    assert "synthetic-banner" not in text and "All operating points" in text
    assert rep.figures >= 4 and rep.warnings == []


def test_cli_report_and_bad_dir(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cli.html"
    assert run_main(monkeypatch, "report", str(run_dir), "--out", str(out)) == 0
    assert out.is_file() and "report written to" in capsys.readouterr().out
    assert run_main(monkeypatch, "report", str(tmp_path / "empty")) == 2
    (tmp_path / "empty").mkdir()
    assert run_main(monkeypatch, "report", str(tmp_path / "empty")) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "does not exist" in err and "is not an aigcsim result directory" in err
    assert "Traceback" not in err


def real_sweep_name(sweep_dir: Path) -> str:
    import json

    return json.loads((sweep_dir / "sweep.json").read_text())["name"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return None


PROBE = (
    "<script>window.addEventListener('load',()=>{document.body.setAttribute('data-imgs',"
    "[...document.images].map(i=>i.complete&&i.naturalWidth>0?i.naturalWidth:0).join(','));"
    "document.body.setAttribute('data-wide',[...document.querySelectorAll('.tablewrap')]"
    ".map(d=>d.scrollWidth>d.clientWidth+1?1:0).join(','));"
    "document.body.setAttribute('data-page',document.documentElement.scrollWidth);"
    "});</script></body>"
)


@pytest.mark.skipif(
    _chromium() is None,
    reason="no chromium binary found; install Debian's chromium (apt-get install chromium) "
    "to render the report in a headless browser",
)
def test_report_renders_in_chromium(real_sweep_dir: Path, tmp_path: Path) -> None:
    """The report of a sweep written by the real sweep runner, rendered in Chromium."""
    path, rep = write_report(real_sweep_dir, tmp_path / "report.html")
    assert rep.warnings == []
    # zipped label/encoder axes give one line per encoder, not a pooled one
    assert "by users.groups.0.encoder" in path.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text().replace("</body>", PROBE))
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--window-size=1280,900",
        "--dump-dom",
        probe.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90).stdout
    found = re.search(r'data-imgs="([^"]*)"', dom)
    assert found, f"the page did not load in chromium: {dom[:300]!r}"
    widths = [int(w) for w in found.group(1).split(",") if w]
    assert len(widths) == rep.figures >= 4
    assert all(w > 100 for w in widths), widths
    # at 1280 px every table fits: no horizontal scrolling, in a table or the page
    wide = re.search(r'data-wide="([^"]*)"', dom).group(1).split(",")
    assert wide and set(wide) == {"0"}, wide
    assert int(re.search(r'data-page="(\d+)"', dom).group(1)) <= 1280
    # the title names the sweep, not its folder
    assert "<h1>aigcsim report: " + real_sweep_name(real_sweep_dir) in path.read_text()
