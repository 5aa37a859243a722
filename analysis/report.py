"""Self-contained HTML reports of a run, a run with variants, or a sweep.

:func:`write_report` loads a result directory (:mod:`aigcsim.analysis.load`) and writes one HTML
file with no external references: figures are embedded as base64 PNG, tables are
plain HTML, and the resolved configs and provenance (``run.json``) are included. When
any operating point behind the results is SYNTHETIC, a red banner at the top lists
the synthetic encoders, and every figure built on them says so.

Contents, by kind:

* all: summary table; CDFs of latency (completed requests) and of quality; per-user
  fairness; rate-quality curves of the encoders used (from the run's table, when it
  can be loaded); resolved config(s); provenance.
* ``sweep``: summary table with the mean and 95 % CI over seeds per axis point (and
  variant), intervals fit for proportions where the metric is one
  (:mod:`aigcsim.analysis.stats`);
  each summary metric against each swept numeric axis with confidence bands; failed
  runs with their errors.

The report carries no timestamp, so the same results give the same file.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from aigcsim.analysis import plots
from aigcsim.analysis.load import Results, load_results
from aigcsim.analysis.stats import format_interval, interval_method, summarize
from aigcsim.kernel.stats import PROPORTION_COUNTS, wilson_interval

REQUEST_COLUMNS = (
    "user",
    "group",
    "encoder",
    "synthetic",
    "scored",
    "latency_s",
    "quality",
    "quality_metric",
    "bits_sent",
    "success",
)
KPIS = (
    "success_rate",
    "mean_lpips",
    "mean_quality",
    "mean_latency_s",
    "p95_latency_s",
    "mean_kbytes_sent",
    "bandwidth_utilization",
    "jain_fairness",
)
MAX_PROVENANCE_ROWS = 50
MAX_FAIRNESS_LINES = 8

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;
color:#222}
h1{font-size:1.6em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.2em .4em;text-align:right}
th{overflow-wrap:anywhere;vertical-align:bottom}
td{overflow-wrap:anywhere}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em}
.synthetic{background:#fdecea;border:2px solid #c0392b;color:#7b1d13;padding:.8em 1em;
margin:1em 0;font-weight:600}
.note{color:#555;font-size:.9em}
.warn{color:#a04000} .tablewrap{overflow-x:auto;max-width:100%}
"""


@dataclass
class Report:
    """An HTML report being assembled: ``sections`` of HTML, figure count, warnings."""

    title: str
    sections: list[str] = field(default_factory=list)
    figures: int = 0
    warnings: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        self.sections.append(text)

    def heading(self, text: str) -> None:
        self.add(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str, cls: str = "note") -> None:
        self.add(f'<p class="{cls}">{html.escape(text)}</p>')

    def table(self, frame: pd.DataFrame) -> None:
        table = frame.to_html(index=False, na_rep="-", border=0, escape=True)
        self.add(f'<div class="tablewrap">{table}</div>')

    def figure(self, build: Any, caption: str) -> None:
        """Embed the figure returned by ``build()``; a failure becomes a warning."""
        try:
            fig = build()
        except Exception as exc:  # one bad figure must not lose the whole report
            self.warnings.append(f"{caption}: {type(exc).__name__}: {exc}")
            self.paragraph(f"figure '{caption}' could not be drawn: {exc}", "warn")
            return
        data = base64.b64encode(plots.png_bytes(fig)).decode("ascii")
        self.figures += 1
        alt = html.escape(caption, quote=True)
        self.add(
            f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def html(self) -> str:
        body = "\n".join(self.sections)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head>\n"
            f"<body>\n<h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )


def _quality_kpi(frame: pd.DataFrame) -> str:
    return "mean_lpips" if "mean_lpips" in frame.columns else "mean_quality"


def _varying(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if c in frame.columns and frame[c].nunique(dropna=False) > 1]


def _independent(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """``columns`` without those that another earlier one determines (zipped axes)."""
    kept: list[str] = []
    for c in columns:
        if not any(
            frame.groupby(k, dropna=False)[c].nunique(dropna=False).max() <= 1 for k in kept
        ):
            kept.append(c)
    return kept


def _synthetic_banner(rep: Report, res: Results) -> None:
    names = res.synthetic_encoders
    if not names:
        rep.paragraph("All operating points behind these results are measured.")
        return
    items = "".join(f"<li><code>{html.escape(n)}</code></li>" for n in names)
    rep.add(
        '<div class="synthetic" id="synthetic-banner">SYNTHETIC DATA: the operating points '
        "of these encoders are (wholly or partly) generated from stated assumptions "
        "(models/synthetic.py), not measured; run.json gives each encoder's provenance. "
        f"Numbers that depend on them are not measurements.<ul>{items}</ul></div>"
    )


def _summary_section(rep: Report, res: Results) -> None:
    rep.heading("Summary")
    ok = res.ok_summaries
    kpis = [k for k in KPIS if k in ok.columns]
    if res.kind == "sweep":
        by = _varying(ok, [*res.axes, "variant"])
        table = summarize(ok, by, kpis)
        shown = table[by + ["runs"]].copy()
        for k in kpis:
            shown[k] = [
                format_interval(m, lo, hi)
                for m, lo, hi in zip(
                    table[f"{k}_point"], table[f"{k}_low"], table[f"{k}_high"], strict=True
                )
            ]
        rep.paragraph(
            f"{len(res.summaries)} runs ({len(ok)} finished). Each cell: the mean over the "
            "runs (seeds) at that point (success rate: pooled over their requests) and its "
            "95 % confidence interval [low, high]. "
            + _interval_note(kpis, list(ok.columns))
            + " A single run shows the mean only (success rate: its Wilson interval)."
        )
        rep.table(shown)
        failed = res.summaries[res.summaries["status"] != "ok"]
        if len(failed):
            rep.heading(f"Failed or missing runs ({len(failed)})")
            cols = [c for c in ["run_id", "status", "seed", *res.axes, "error"] if c in failed]
            rep.table(failed[cols])
    else:
        cols = ["run_id", "seed", "requests_total", *kpis, "synthetic"]
        rep.paragraph(
            "success_rate: the run's rate and its 95 % Wilson score interval [low, high] "
            "over its scored requests. Quality: "
            + ("LPIPS, lower is better." if "mean_lpips" in kpis else "the scenario's metric.")
        )
        rep.table(_with_wilson(ok[[c for c in cols if c in ok.columns]]))
        if len(res.groups):
            rep.paragraph("Per user group (encoder):")
            gcols = ["run_id", "group", "requests_total", *kpis, "synthetic"]
            rep.table(_with_wilson(res.groups[[c for c in gcols if c in res.groups.columns]]))


def _interval_note(kpis: list[str], columns: list[str]) -> str:
    """One sentence per interval method used for ``kpis``."""
    methods: dict[str, list[str]] = {}
    for k in kpis:
        methods.setdefault(interval_method(k, columns), []).append(k)
    text = {
        "t": "Student-t interval (mean ± t * s / sqrt(n))",
        "wilson": "Wilson score interval of the proportion pooled over the seeds' requests "
        "(treats requests as independent)",
        "bootstrap": "percentile bootstrap of the mean over seeds (10,000 resamples; never "
        "wider than the seeds' range, so it under-covers with 2-3 seeds)",
    }
    return " ".join(f"{', '.join(ms)}: {text[m]}." for m, ms in methods.items())


def _with_wilson(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each success rate shown as ``rate [low, high]`` (Wilson, 95 %)."""
    count = PROPORTION_COUNTS["success_rate"]
    if "success_rate" not in frame.columns or count not in frame.columns:
        return frame
    out = frame.copy()
    cells = []
    for rate, n in zip(frame["success_rate"], frame[count], strict=True):
        rate, n = float(rate), float(n)
        if n != n or rate != rate:  # NaN
            cells.append(format_interval(rate, float("nan"), float("nan")))
            continue
        cells.append(format_interval(rate, *wilson_interval(round(rate * n), n)))
    out["success_rate"] = cells
    return out


def _sweep_figures(rep: Report, res: Results) -> None:
    ok = res.ok_summaries
    numeric_axes = [
        a for a in _varying(ok, res.axes) if pd.api.types.is_numeric_dtype(ok[a])
    ] or _varying(ok, res.axes)
    if not numeric_axes:
        return
    rep.heading("Metrics against swept axes")
    syn = res.synthetic_encoders
    for x in numeric_axes[:3]:
        others = _independent(ok, [c for c in _varying(ok, [*res.axes, "variant"]) if c != x])
        frame, hue = ok, None
        if len(others) == 1:
            hue = others[0]
        elif others:  # one line per combination of the other axes
            hue = " / ".join(others)
            frame = ok.assign(**{hue: ok[others].astype(str).agg(" / ".join, axis=1)})
        for metric in ("success_rate", _quality_kpi(ok), "mean_latency_s"):
            if metric in ok.columns:
                rep.figure(
                    lambda x=x, m=metric, h=hue, f=frame: plots.plot_metric_vs_axis(
                        f, x, m, h, syn
                    ),
                    f"{metric} vs {x}" + (f" by {hue}" if hue else "") + " (mean, 95 % CI)",
                )


def _request_figures(rep: Report, res: Results) -> None:
    req = res.requests
    if req is None or not len(req):
        rep.paragraph("No request rows to plot.")
        return
    rep.heading("Distributions")
    if res.kind == "run":
        hue = "encoder"
    elif res.kind == "variants":
        hue = "variant"
    else:
        varying = _varying(req, ["encoder", "variant", *res.axes])
        hue = varying[0] if varying else "encoder"
    metric = str(req["quality_metric"].iloc[0]) if "quality_metric" in req else "quality"
    rep.figure(
        lambda: plots.plot_cdf(req, "latency_s", hue, completed_only=True),
        f"CDF of latency (arrival to decoded, s) over completed requests, by {hue}",
    )
    rep.figure(
        lambda: plots.plot_cdf(req, "quality", hue, title=f"CDF of {metric} reached"),
        f"CDF of {metric} reached over all scored requests, by {hue}",
    )
    rep.heading("Per-user fairness")
    fair = req
    if res.kind == "sweep":
        first_seed = res.ok_summaries["seed"].min()
        ids = res.ok_summaries.loc[res.ok_summaries["seed"] == first_seed, "run_id"]
        ids = list(ids)[:MAX_FAIRNESS_LINES]
        fair = req[req["run_id"].isin(ids)]
        rep.paragraph(f"Runs of seed {first_seed} (at most {MAX_FAIRNESS_LINES}), one line each.")
    rep.figure(
        lambda: plots.plot_fairness(fair, "run_id"),
        "Per-user delivered data and success rate, sorted; Jain's index in the legend",
    )


def _rate_quality(rep: Report, res: Results) -> None:
    """Rate-quality curves of the encoders in the first run's table (if loadable)."""
    from aigcsim.kernel.registry import UserInputError
    from aigcsim.sim.scenario import read_yaml, validate
    from aigcsim.sim.table_source import load_source

    run = next((r for r in res.runs if r.path is not None and r.config_yaml), None)
    if run is None or run.path is None:
        return
    rep.heading("Encoders: rate-quality from the operating-point table")
    try:
        scenario = validate(read_yaml(run.path / "config.yaml"))
        encoders = sorted(
            {e for r in res.runs for e in r.run_json.get("table", {}).get("encoders", {})}
        )
        encoders = encoders or sorted({g.encoder for g in scenario.users.groups})
        table = load_source(scenario.table, encoders, run.path)
    except (UserInputError, OSError) as exc:
        rep.paragraph(f"The run's operating-point table could not be loaded here: {exc}", "warn")
        return
    metric = scenario.qos.metric
    rep.figure(
        lambda: plots.plot_rate_quality(table, metric),
        f"Mean kB received vs mean {metric} after k units, per encoder ({table.source})",
    )


def _config_section(rep: Report, res: Results) -> None:
    rep.heading("Resolved configuration")
    shown = [r for r in res.runs if r.config_yaml]
    if res.kind == "sweep":
        if res.manifest is not None:
            cols = ["run_id", "seed", "variant", *res.axes]
            rep.paragraph(
                "Runs of the sweep (sweep.json); each run's config is the first "
                "config below with these keys set."
            )
            rep.table(res.summaries[[c for c in cols if c in res.summaries.columns]])
        shown = shown[:1]
    for r in shown:
        rep.add(
            f"<details><summary>{html.escape(r.run_id)}: config.yaml</summary>"
            f"<pre>{html.escape(r.config_yaml)}</pre></details>"
        )
    if not shown:
        rep.paragraph("No config.yaml found.", "warn")


def _provenance_section(rep: Report, res: Results) -> None:
    rep.heading("Provenance (run.json)")
    rows = []
    for r in res.runs[:MAX_PROVENANCE_ROWS]:
        j = r.run_json
        git = j.get("git") or {}
        table = j.get("table") or {}
        encs = table.get("encoders") or {}
        backends = sorted(
            {
                f"{(info.get('provenance') or {}).get('backend', '?')}"
                f"{' (SYNTHETIC)' if info.get('synthetic') else ''}"
                for info in encs.values()
            }
        )
        rows.append(
            {
                "run_id": r.run_id,
                "seed": j.get("seed"),
                "git commit": (git.get("commit") or "-")[:12]
                + (" (dirty)" if git.get("dirty") else ""),
                "python": j.get("python", "-"),
                "table source": table.get("source", "-"),
                "images": table.get("images", "-"),
                "backends": ", ".join(backends) or "-",
            }
        )
    if len(res.runs) > MAX_PROVENANCE_ROWS:
        rep.paragraph(f"First {MAX_PROVENANCE_ROWS} of {len(res.runs)} runs.")
    if rows:
        rep.table(pd.DataFrame(rows))
    first = next((r.run_json for r in res.runs if r.run_json), None)
    if first:
        versions = first.get("versions") or {}
        rep.paragraph(
            "Versions: "
            + ", ".join(f"{k} {v}" for k, v in versions.items())
            + f". Platform: {first.get('platform', '-')}. Command: "
            + " ".join(str(a) for a in first.get("command") or [])
        )


def _name(res: Results) -> str:
    """The sweep's name (``sweep.json``) or the scenario's name (``summary.json``); the
    folder name when neither is recorded."""
    if res.manifest is not None and res.manifest.get("name"):
        return str(res.manifest["name"])
    if "scenario" in res.summaries.columns and len(res.summaries):
        names = res.summaries["scenario"].dropna().astype(str).unique()
        if len(names) == 1:
            return names[0]
    return res.root.name


def build_report(res: Results, title: str | None = None) -> Report:
    """Assemble the report for loaded results (see the module docstring)."""
    rep = Report(title or f"aigcsim report: {_name(res)} ({res.kind})")
    rep.paragraph(
        f"{res.kind} directory {res.root} with {len(res.summaries)} run(s)."
        + (f" Swept axes: {', '.join(res.axes)}." if res.axes else "")
    )
    _synthetic_banner(rep, res)
    _summary_section(rep, res)
    if res.kind == "sweep":
        _sweep_figures(rep, res)
    _request_figures(rep, res)
    _rate_quality(rep, res)
    _config_section(rep, res)
    _provenance_section(rep, res)
    return rep


def write_report(result_dir: str | Path, out: str | Path | None = None) -> tuple[Path, Report]:
    """Load ``result_dir`` and write its HTML report to ``out`` (default
    ``RESULT_DIR/report.html``) atomically (``.partial`` file, then rename)."""
    res = load_results(result_dir, requests=True, request_columns=REQUEST_COLUMNS)
    rep = build_report(res)
    path = Path(out) if out is not None else Path(result_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(rep.html(), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path, rep
