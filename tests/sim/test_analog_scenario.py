"""The TISC scenario end to end on the default catalogue (analog SNR recorded per unit),
and the TISC reproduction script's comparison table."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from aigcsim.sim import scenario as sl
from aigcsim.sim.run import run_scenario


def test_tisc_scenario_records_the_snr_of_every_analog_unit(tmp_path):
    sc = sl.load(sl.resolve_path("tisc-snr-comparison"), ["duration_s=6", "variants=[]"])
    run_scenario(sc, tmp_path / "run")
    df = pq.read_table(tmp_path / "run" / "requests.parquet").to_pandas()
    assert len(df) > 20
    delivered = df[df["units_received"] == df["units_total"]]
    analog = delivered["encoder"].str.startswith(("tisc/", "deepjscc/"))
    assert analog.any() and (~analog).any()
    assert delivered.loc[analog, "analog_snr_db"].notna().all()
    assert (delivered.loc[analog, "channel_uses"] > 0).all()
    assert delivered.loc[~analog, "analog_snr_db"].isna().all()
    assert (delivered.loc[~analog, "channel_uses"] == 0).all()
    tisc = delivered[delivered["encoder"] == "tisc/train_snr=-5"]
    assert (tisc["channel_uses"] == 384.0).all()  # 768 / 2 complex channel uses
    near = delivered[delivered["group"] == "deepjscc-near"]["analog_snr_db"]
    far = delivered[delivered["group"] == "deepjscc-far"]["analog_snr_db"]
    if len(near) and len(far):
        assert near.mean() > far.mean()


def test_repro_comparison_states_which_numbers_are_measured(tmp_path):
    from aigcsim.analysis.repro import tisc

    frame = tisc.main(["--out", str(tmp_path), "--png-only"])
    assert (tmp_path / "tisc.png").is_file()
    label = frame.groupby("encoder")["lpips data"].first()
    assert label["deepjscc/train_snr=5"] == "measured" and label["jpeg/q=40"] == "measured"
    assert label["tisc/train_snr=-5"] == "SYNTHETIC" and label["seq-words/natural"] == "SYNTHETIC"
    jpeg = frame[frame["scheme"] == "JPEG q=40"]
    assert np.ptp(jpeg["mean_lpips"]) == 0  # digital: error-free once delivered
    assert jpeg["channel_uses_per_image"].is_monotonic_decreasing
    dj = frame[frame["scheme"] == "DeepJSCC (train 5 dB)"]
    assert dj["mean_lpips"].iloc[-1] < dj["mean_lpips"].iloc[0]
