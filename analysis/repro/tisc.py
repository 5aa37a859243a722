"""TISC against its baselines over SNR, and the noise-level ablation (issue 14).

Run: ``python -m aigcsim.analysis.repro.tisc [--out results/repro] [--png-only]
[--simulate]``.

Reproduces the *shape* of the TISC seed's comparison
(../shared/seeds/beyond-prompts-textual-inversion-semcom.txt) from ``builtin:default``:

1. mean LPIPS against the channel SNR for TISC (embedding trained at -5 dB),
   prompt-only (the ``seq-words`` stream with all caption words: the caption alone),
   DeepJSCC and JPEG q=40. Analog schemes are read from their quality(SNR) curves;
   digital ones (prompt-only, JPEG) are error-free once delivered (ARQ), so their LPIPS
   does not depend on SNR, but their cost does:
2. complex channel uses per image against SNR: digital payloads need
   ``bits / log2(1 + SNR / Gamma)`` (Shannon with the scenario's 3 dB gap), analog ones
   a fixed number (TISC: its caption bits at that rate plus ``dim / 2``);
3. the noise-level ablation: TISC trained at -5, 0, 5 dB and without noise.

What is measured: DeepJSCC (a small model trained here, LPIPS of its reconstructions at
every SNR; the 3 held-out photographs are reported apart) and JPEG (LPIPS of the
decoded files). SYNTHETIC: every TISC and prompt-only LPIPS (no text-to-image model
installs offline; models/synthetic.py states the assumptions). Bits and channel uses
are real for all. Output tables and figure say which is which.

``--simulate`` also runs ``scenarios/tisc-snr-comparison.yaml`` (4 variants) and prints,
per group, the success rate, mean LPIPS and the mean recorded analog SNR.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from aigcsim.analysis.repro.common import data_label, parse_args, print_table, save_outputs

if TYPE_CHECKING:
    from aigcsim.models.optable import OperatingPointTable

SCHEMES = {
    "TISC (train -5 dB)": "tisc/train_snr=-5",
    "prompt-only": "seq-words/natural",
    "DeepJSCC (train 5 dB)": "deepjscc/train_snr=5",
    "JPEG q=40": "jpeg/q=40",
}
ABLATION = {
    "train -5 dB": "tisc/train_snr=-5",
    "train 0 dB": "tisc/train_snr=0",
    "train 5 dB": "tisc/train_snr=5",
    "noise-free": "tisc/clean",
}
GAP_DB = 3.0


def analog_arrays(table: OperatingPointTable) -> tuple[np.ndarray, np.ndarray]:
    """``(analog_snr_db [S], analog_channel_uses [I, E])`` of ``table`` (always set once
    the table is built: an all-digital table has an empty grid and zero channel uses)."""
    snr_db, uses = table.analog_snr_db, table.analog_channel_uses
    assert snr_db is not None and uses is not None, "OperatingPointTable.__post_init__ sets both"
    return snr_db, uses


def lpips_vs_snr(table: OperatingPointTable, encoder_id: str, images: np.ndarray) -> np.ndarray:
    """``[S]`` mean LPIPS over ``images`` (indices) at each SNR of the table's grid."""
    e = table.encoder_index(encoder_id)
    if table.is_analog[images, e].all():
        return table.analog_quality["lpips"][images, e, :].mean(axis=0)
    n = table.num_units[images, e]
    full = table.quality["lpips"][images, e, n]
    return np.full(analog_arrays(table)[0].size, full.mean())


def channel_uses_vs_snr(
    table: OperatingPointTable, encoder_id: str, gap_db: float = GAP_DB
) -> np.ndarray:
    """``[S]`` mean complex channel uses per image: digital bits at Shannon rate with
    ``gap_db`` plus the analog unit's channel uses."""
    e = table.encoder_index(encoder_id)
    snr_db, uses = analog_arrays(table)
    snr = 10.0 ** ((snr_db - gap_db) / 10.0)
    bits = table.total_bits[:, e][:, None]
    return (bits / np.log2(1.0 + snr)[None, :] + uses[:, e][:, None]).mean(0)


def comparison(table: OperatingPointTable) -> pd.DataFrame:
    """Tidy frame: scheme, encoder, SNR, mean LPIPS (all / held-out images), channel uses."""
    from aigcsim.models.deepjscc.train import HELDOUT

    everything = np.arange(len(table.image_ids))
    held = np.array([i for i, im in enumerate(table.image_ids) if im in HELDOUT])
    rows = []
    for scheme, enc in {**SCHEMES, **{f"TISC {k}": v for k, v in ABLATION.items()}}.items():
        lp = lpips_vs_snr(table, enc, everything)
        lp_held = lpips_vs_snr(table, enc, held)
        uses = channel_uses_vs_snr(table, enc)
        for s, a, b, c in zip(analog_arrays(table)[0], lp, lp_held, uses, strict=True):
            rows.append((scheme, enc, data_label(table, enc), float(s), a, b, c))
    return pd.DataFrame(
        rows,
        columns=[
            "scheme", "encoder", "lpips data", "snr_db", "mean_lpips", "mean_lpips_heldout",
            "channel_uses_per_image",
        ],
    )  # fmt: skip


def figure(frame: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(13.5, 4.2))
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for scheme in SCHEMES:
        f = frame[frame["scheme"] == scheme]
        label = f"{scheme} [{f['lpips data'].iloc[0]}]"
        ax1.plot(f["snr_db"], f["mean_lpips"], marker=".", label=label)
        ax2.semilogy(f["snr_db"], f["channel_uses_per_image"], marker=".", label=scheme)
    for name in ABLATION:
        f = frame[frame["scheme"] == f"TISC {name}"]
        ax3.plot(f["snr_db"], f["mean_lpips"], marker=".", label=name)
    ax1.set(xlabel="channel SNR (dB)", ylabel="mean LPIPS (lower is better)",
            title="quality vs SNR")  # fmt: skip
    ax2.set(xlabel="channel SNR (dB)", ylabel="complex channel uses per image",
            title="cost vs SNR (digital: Shannon, 3 dB gap)")  # fmt: skip
    ax3.set(xlabel="channel SNR (dB)", ylabel="mean LPIPS",
            title="TISC noise-level ablation [SYNTHETIC]")  # fmt: skip
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def simulate() -> pd.DataFrame:
    """Run ``tisc-snr-comparison`` (all variants) in a temporary folder; per-group table."""
    import tempfile
    from pathlib import Path

    import pyarrow.parquet as pq

    from aigcsim.sim import scenario as sl
    from aigcsim.sim.run import run_scenario

    sc = sl.load(sl.resolve_path("tisc-snr-comparison"))
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        run_scenario(sc, out)
        for req in sorted(out.rglob("requests.parquet")):
            df = pq.read_table(req).to_pandas()
            df = df[df["scored"]]
            g = df.groupby("group", sort=False).agg(
                requests=("success", "size"),
                success_rate=("success", "mean"),
                mean_lpips=("quality", "mean"),
                mean_analog_snr_db=("analog_snr_db", "mean"),
                mean_channel_uses=("channel_uses", "mean"),
            )
            g.insert(0, "variant", req.parent.name)
            frames.append(g.reset_index())
    out = pd.concat(frames, ignore_index=True)
    order = {g.name: i for i, g in enumerate(sc.users.groups)}
    return out.sort_values(["variant", "group"], key=lambda c: c.map(order) if c.name == "group"
                           else c, kind="stable", ignore_index=True)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    import argparse

    from aigcsim.analysis.repro.common import load_builtin

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--simulate", action="store_true")
    known, rest = pre.parse_known_args(argv)
    args = parse_args(__doc__.splitlines()[0], rest)
    encoders = list(dict.fromkeys([*SCHEMES.values(), *ABLATION.values()]))
    table = load_builtin("builtin:default", encoders)
    frame = comparison(table)
    show = frame[frame["snr_db"].isin([-10.0, -5.0, 0.0, 5.0, 10.0, 20.0])]
    wide = show.pivot_table(
        index=["scheme", "lpips data"], columns="snr_db", values="mean_lpips", sort=False
    ).reset_index()
    print_table(f"Mean LPIPS vs SNR (dB), {table.source}, {len(table.image_ids)} images", wide)
    dj = show[show["encoder"] == SCHEMES["DeepJSCC (train 5 dB)"]]
    print_table(
        "DeepJSCC [measured] on the 3 held-out photographs only",
        dj[["snr_db", "mean_lpips_heldout"]],
    )
    uses = show.pivot_table(
        index="scheme", columns="snr_db", values="channel_uses_per_image", sort=False
    ).reset_index()
    print_table("Complex channel uses per image vs SNR (dB)", uses, "{:.0f}")
    tables = {"tisc_quality_vs_snr": frame}
    if known.simulate:
        sim = simulate()
        print_table("tisc-snr-comparison (scored requests)", sim, "{:.3g}")
        tables["tisc_scenario_groups"] = sim
    png = save_outputs(args, figure(frame), "tisc", tables)
    print(f"wrote {png}")
    return frame


if __name__ == "__main__":
    main()
