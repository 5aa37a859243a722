"""Figures researchers expect, as matplotlib figures saved to PNG and PDF.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (so no
GUI backend and no global state; rendering uses Agg); :func:`save_figure` writes it
as ``STEM.png`` and ``STEM.pdf`` atomically. Figures built on SYNTHETIC operating
points say so in their title and in a red note under the axes, and synthetic
encoders are marked ``(SYNTHETIC)`` in legends.

* :func:`plot_metric_vs_axis`: a summary metric against a swept axis, mean and 95 %
  confidence band over seeds, one line per hue value (encoder, allocator, variant).
* :func:`plot_cdf`: empirical CDFs of a request column (latency, LPIPS) per hue value.
* :func:`plot_rate_quality`: bits received vs quality after ``k`` units, from an
  operating-point table, one curve per encoder configuration, a panel per family.
* :func:`plot_fairness`: per-user delivered data and success rate, sorted, with
  Jain's index.
* :func:`plot_learning_curves`: RL training returns (SB3 monitor) and periodic
  evaluation returns against environment steps.
"""

from __future__ import annotations

import io
import os
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from aigcsim.analysis.stats import jain_index, per_user, summarize

if TYPE_CHECKING:
    from aigcsim.models.optable import OperatingPointTable

SYNTHETIC_COLOR = "#c0392b"
DPI = 110


def _new_figure(ncols: int = 1, width_in: float = 6.0, height_in: float = 4.0) -> Figure:
    fig = Figure(
        figsize=(width_in * ncols if ncols > 1 else width_in, height_in),
        dpi=DPI,
        layout="constrained",
    )
    fig.subplots(1, ncols, squeeze=False)
    return fig


def mark_synthetic(fig: Figure, synthetic: Sequence[str] | bool, title: str) -> None:
    """Set ``title``; if ``synthetic`` (names or True), prefix it and add a red note."""
    names = [synthetic] if isinstance(synthetic, str) else synthetic
    if names:
        listed = "" if names is True else ": " + ", ".join(sorted(names))
        text = textwrap.fill(f"[includes SYNTHETIC data] {title}", 80)
        fig.suptitle(text, color=SYNTHETIC_COLOR, fontsize=10)
        note = textwrap.fill(f"Built on SYNTHETIC operating points (not measured){listed}", 130)
        fig.supxlabel(note, color=SYNTHETIC_COLOR, fontsize=7, ha="center")
    else:
        fig.suptitle(textwrap.fill(title, 80), fontsize=10)


def _label(name: object, synthetic: set[str]) -> str:
    return f"{name} (SYNTHETIC)" if str(name) in synthetic else str(name)


def _atomic_savefig(fig: Figure, path: Path, fmt: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format=fmt, dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure(fig: Figure, stem: str | Path) -> tuple[Path, Path]:
    """Write ``STEM.png`` and ``STEM.pdf`` (each via a temp file + rename)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")
    _atomic_savefig(fig, png, "png")
    _atomic_savefig(fig, pdf, "pdf")
    return png, pdf


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (for embedding in HTML)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


# ------------------------------------------------------------------ sweeps
UNIT_INTERVAL_METRICS = frozenset({"success_rate", "bandwidth_utilization", "jain_fairness"})
"""Summary metrics that live in [0, 1]: their confidence bands are drawn clipped to it."""
NONNEGATIVE_METRICS = frozenset(
    {"mean_lpips", "mean_latency_s", "p95_latency_s", "mean_kbytes_sent", "wall_time_s"}
)
"""Summary metrics that are >= 0: their bands are drawn with the lower edge at 0 or above."""


def plot_metric_vs_axis(
    summaries: pd.DataFrame,
    x: str,
    metric: str,
    hue: str | None = None,
    synthetic: Sequence[str] | bool = (),
    title: str | None = None,
) -> Figure:
    """``metric`` against swept axis ``x``: mean over seeds and its 95 % band (Student-t;
    for proportions the Wilson or bootstrap interval of :func:`aigcsim.analysis.stats.summarize`).

    Args:
        summaries: one row per run with columns ``x``, ``metric`` (and ``hue``).
        x: swept column (numeric values are plotted on a numeric axis, others as
            categories in sorted order).
        metric: summary column, e.g. ``mean_lpips``.
        hue: one line per value of this column (e.g. ``variant``, ``allocator.name``).
        synthetic: SYNTHETIC encoders behind the data (or True), flagged in the title.
    """
    by = [x] + ([hue] if hue else [])
    table = summarize(summaries, by, [metric])
    fig = _new_figure()
    ax = fig.axes[0]
    numeric = pd.api.types.is_numeric_dtype(summaries[x])
    categories = sorted(table[x].astype(str).unique())
    parts = table.groupby(hue, dropna=False, sort=True) if hue else [(None, table)]
    for key, part in parts:
        part = part.sort_values(x)
        xs = part[x].to_numpy(float) if numeric else part[x].astype(str).map(categories.index)
        # the estimate the interval surrounds (the mean; success rate: pooled)
        mean = part[f"{metric}_point"].to_numpy(float)
        label = None if hue is None else str(key)
        (line,) = ax.plot(xs, mean, marker="o", label=label)
        # the interval of summarize(): t for ordinary metrics, Wilson/bootstrap (inside
        # [0, 1]) for proportions; no band where it is NaN (one seed)
        lo = np.where(np.isnan(part[f"{metric}_low"]), mean, part[f"{metric}_low"])
        hi = np.where(np.isnan(part[f"{metric}_high"]), mean, part[f"{metric}_high"])
        if metric in UNIT_INTERVAL_METRICS:
            lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
        elif metric in NONNEGATIVE_METRICS:
            lo = np.maximum(lo, 0.0)
        ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
    if not numeric:
        ax.set_xticks(range(len(categories)), categories, rotation=20)
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if hue:
        ax.legend(
            fontsize=7, title=hue, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1)
        )
    n_seeds = int(table["runs"].max()) if len(table) else 0
    mark_synthetic(
        fig,
        synthetic,
        title or f"{metric} vs {x}: mean and 95 % CI over seeds (up to {n_seeds} runs a point)",
    )
    return fig


# ------------------------------------------------------------------ requests
def plot_cdf(
    requests: pd.DataFrame,
    column: str,
    hue: str | None = "encoder",
    completed_only: bool = False,
    title: str | None = None,
) -> Figure:
    """Empirical CDF of ``column`` (e.g. ``latency_s``, ``quality``) over scored requests.

    Args:
        requests: request rows (``scored``, ``column``, ``hue``, ``synthetic``).
        completed_only: keep only rows with a finite value (latency is NaN for
            requests never delivered, so this is the CDF over completed requests).
    Encoders whose rows are synthetic are flagged ``(SYNTHETIC)``.
    """
    r = requests[requests["scored"]] if "scored" in requests.columns else requests
    syn: set[str] = set()
    if "synthetic" in r.columns and hue is not None and hue in r.columns:
        syn = {str(v) for v in r.loc[r["synthetic"], hue].unique()}
    fig = _new_figure()
    ax = fig.axes[0]
    parts = r.groupby(hue, sort=True) if hue else [("all", r)]
    for key, part in parts:
        v = part[column].to_numpy(float)
        finite = v[np.isfinite(v)]
        if completed_only:
            v = finite
        if not finite.size:
            continue
        xs = np.sort(finite)
        ys = np.arange(1, xs.size + 1) / max(v.size, 1)
        ax.step(xs, ys, where="post", label=f"{_label(key, syn)} (n={v.size})")
    ax.set_xlabel(column)
    ax.set_ylabel("fraction of requests" + (" (completed)" if completed_only else ""))
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=hue, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    any_syn = bool(syn) or bool("synthetic" in r.columns and r["synthetic"].any())
    mark_synthetic(fig, sorted(syn) or any_syn, title or f"CDF of {column}")
    return fig


def plot_fairness(requests: pd.DataFrame, hue: str = "run_id", title: str | None = None) -> Figure:
    """Per-user delivered kB and success rate, each sorted descending, one line per
    ``hue`` value; Jain's index of delivered bits in the legend (scored requests)."""
    users = per_user(requests, [hue] if hue in requests.columns else [])
    fig = _new_figure(ncols=2, width_in=4.2)
    ax_bits, ax_succ = fig.axes
    groups = users.groupby(hue, sort=True) if hue in users.columns else [("all", users)]
    for key, part in groups:
        bits = np.sort(part["bits_delivered"].to_numpy(float))[::-1]
        succ = np.sort(part["success_rate"].to_numpy(float))[::-1]
        rank = np.arange(1, bits.size + 1)
        ax_bits.plot(rank, bits / 8e3, label=f"{key} (Jain {jain_index(bits):.3f})")
        ax_succ.plot(rank, succ, label=str(key))
    ax_bits.set_xlabel("user rank")
    ax_bits.set_ylabel("delivered kB per user")
    ax_succ.set_xlabel("user rank")
    ax_succ.set_ylabel("success rate per user")
    ax_succ.set_ylim(-0.02, 1.02)
    for ax in (ax_bits, ax_succ):
        ax.grid(alpha=0.3)
    ax_bits.legend(fontsize=7)
    syn = requests["synthetic"].any() if "synthetic" in requests.columns else False
    syn_names = (
        sorted(requests.loc[requests["synthetic"], "encoder"].unique())
        if syn and "encoder" in requests.columns
        else bool(syn)
    )
    mark_synthetic(fig, syn_names, title or "Per-user fairness (scored requests)")
    return fig


# ------------------------------------------------------------------ tables
def _family(encoder_id: str) -> str:
    """Panel of an encoder: its family, with the single-unit pixel codecs together."""
    fam = encoder_id.split("/")[0]
    return "jpeg / raw" if fam in ("jpeg", "raw") else fam


def rate_quality_curves(
    table: OperatingPointTable, metric: str = "lpips", encoders: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean over images of (bits received, quality) after ``k`` units, per encoder.

    Returns one row per (``encoder``, ``k``): ``kbytes`` (mean cumulative kB of the
    first ``k`` units), ``quality`` (mean metric after ``k`` units), ``synthetic``.
    Images with fewer than ``k`` units contribute their whole stream (the table repeats
    the last value), so the last point is the mean full-stream (bits, quality).
    """
    q = table.metric(metric)
    cum = table.cum_bits
    rows = []
    for e in encoders or table.encoder_ids:
        j = table.encoder_index(e)
        n = int(table.num_units[:, j].max())
        syn = table.is_synthetic(e)
        for k in range(n + 1):
            rows.append(
                {
                    "encoder": e,
                    "k": k,
                    "kbytes": float(cum[:, j, k].mean() / 8e3),
                    "quality": float(q[:, j, k].mean()),
                    "synthetic": syn,
                }
            )
    return pd.DataFrame(rows)


def plot_rate_quality(
    table: OperatingPointTable,
    metric: str = "lpips",
    encoders: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Rate-quality curves straight from an operating-point table: mean kB received
    vs mean quality after ``k`` units, a panel per encoder family (log x axis).
    Single-unit encoders (JPEG levels, raw) are drawn as one point per level."""
    curves = rate_quality_curves(table, metric, encoders)
    families = list(dict.fromkeys(_family(e) for e in curves["encoder"]))
    fig = _new_figure(ncols=len(families), width_in=4.0, height_in=3.8)
    syn = sorted(set(curves.loc[curves["synthetic"], "encoder"]))
    for ax, fam in zip(fig.axes, families, strict=True):
        mine = curves[curves["encoder"].map(_family) == fam]
        single = mine.groupby("encoder")["k"].max().max() <= 1
        if single:  # one unit: plot each level's full stream as a point
            last = mine[mine["k"] == 1].sort_values("kbytes")
            ax.plot(last["kbytes"], last["quality"], "o-", color="C0")
            for _, row in last.iterrows():
                level = row["encoder"].removeprefix("jpeg/")
                text = f"{level} (SYNTHETIC)" if row["synthetic"] else level
                ax.annotate(text, (row["kbytes"], row["quality"]), fontsize=7)
        else:
            for e, part in mine.groupby("encoder", sort=True):
                part = part[part["k"] >= 1]
                style = "--" if e in syn else "-"
                ax.plot(part["kbytes"], part["quality"], style, label=_label(e, set(syn)))
            ax.legend(fontsize=6)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(fam, fontsize=10)
        ax.set_xlabel("kB received (mean over images)")
        ax.grid(alpha=0.3, which="both")
    fig.axes[0].set_ylabel(f"{metric} after k units (mean over images)")
    mark_synthetic(
        fig,
        syn,
        title or f"Rate-quality from {table.source} ({len(table.image_ids)} images)",
    )
    return fig


# ------------------------------------------------------------------ RL
RunDirs = str | Path | Sequence[str | Path]
"""One training directory or several (e.g. one per training seed) under one label."""


def _steps_label(x: float, _pos: object = None) -> str:
    """Tick label of a step count: ``20k``, ``1.5M``, ``500``."""
    if abs(x) >= 1e6:
        return f"{x / 1e6:g}M"
    if abs(x) >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def _dir_list(value: RunDirs) -> list[Path]:
    if isinstance(value, (str, Path)):
        return [Path(value)]
    return [Path(v) for v in value]


def plot_learning_curves(
    train_dirs: Mapping[str, RunDirs] | Sequence[str | Path],
    window: int = 10,
    synthetic: Sequence[str] | bool = (),
    title: str | None = None,
    references: Mapping[str, float] | None = None,
    log_steps: bool = False,
) -> Figure:
    """Training episode returns and periodic-evaluation returns against env steps.

    Left panel: training episodes (SB3 monitor logs of every training env; see
    :func:`aigcsim.analysis.rl_logs.read_monitor`), the rolling mean over ``window``
    episodes per run (with one run per label also the raw returns, faint). Right panel:
    periodic evaluations (``evaluations.npz``): with one run per label the mean ± std
    over evaluation episodes; with several (training seeds) a thin line per run and a
    thick line for the mean over runs at the steps they share.

    Args:
        train_dirs: ``{label: dir or [dirs]}`` or a list of dirs written by
            ``aigcsim train`` (each its own label, :func:`~aigcsim.analysis.rl_logs.agent_label`).
        window: episodes in the rolling mean (>= 1).
        synthetic: SYNTHETIC encoders of the training scenario, flagged in the title.
        title: figure title (default "RL learning curves").
        references: ``{label: return}`` drawn as dashed horizontal lines on both panels
            (e.g. heuristics' mean return on held-out seeds).
        log_steps: logarithmic step axis (runs of very different lengths).
    """
    from aigcsim.analysis.rl_logs import agent_label, read_evaluations, read_monitor

    groups: dict[str, list[Path]]
    if isinstance(train_dirs, Mapping):
        groups = {str(k): _dir_list(v) for k, v in train_dirs.items()}
    else:
        groups = {agent_label(d): [Path(d)] for d in train_dirs}
    window = max(1, int(window))
    fig = _new_figure(ncols=2, width_in=4.8 if references else 4.2)
    ax_tr, ax_ev = fig.axes
    drawn: set[object] = set()  # the panels with runs' data
    for i, (label, dirs) in enumerate(groups.items()):
        color = f"C{i % 10}"
        single = len(dirs) == 1
        evs: list[pd.Series] = []
        for d in dirs:
            mon = read_monitor(d)
            if len(mon):
                drawn.add(ax_tr)
                roll = mon["return"].rolling(window, min_periods=1).mean()
                if single:
                    ax_tr.plot(mon["timesteps"], mon["return"], color=color, alpha=0.25, lw=0.8)
                ax_tr.plot(mon["timesteps"], roll, color=color, lw=1.5 if single else 1.0)
            ev = read_evaluations(d)
            if not len(ev):
                continue
            drawn.add(ax_ev)
            m = ev["mean_return"].to_numpy(float)
            if single:
                s = ev["std_return"].to_numpy(float)
                ax_ev.plot(ev["timesteps"], m, "o-", color=color, label=label)
                ax_ev.fill_between(ev["timesteps"], m - s, m + s, color=color, alpha=0.2)
            else:
                ax_ev.plot(ev["timesteps"], m, color=color, alpha=0.4, lw=0.8)
                evs.append(pd.Series(m, index=ev["timesteps"].to_numpy()))
        if evs:
            mean = pd.concat(evs, axis=1).dropna().mean(axis=1)
            ax_ev.plot(mean.index, mean.to_numpy(), "o-", color=color, lw=2, ms=3, label=label)
        ax_tr.plot([], [], color=color, label=label)  # one legend entry per label
    for j, (name, value) in enumerate((references or {}).items()):
        for ax in (ax_tr, ax_ev):
            ax.axhline(float(value), color=f"C{(len(groups) + j) % 10}", ls="--", lw=1, label=name)
    runs = "per run" if all(len(v) == 1 for v in groups.values()) else "thin: per run"
    ax_tr.set_title(f"training episodes (rolling mean of {window}, per run)", fontsize=9)
    ax_ev.set_title(
        "evaluation (mean ± std over episodes)"
        if runs == "per run"
        else "periodic evaluation (thin: per run, thick: mean)",
        fontsize=9,
    )
    for ax in (ax_tr, ax_ev):
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episode return")
        if log_steps and ax in drawn:
            ax.set_xscale("log")  # only with steps to show (an empty log axis cannot draw)
        ax.xaxis.set_major_formatter(FuncFormatter(_steps_label))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    mark_synthetic(fig, synthetic, title or "RL learning curves")
    return fig
