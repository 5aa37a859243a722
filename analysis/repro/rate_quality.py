"""Rate-quality of every encoder in the default catalogue (the README's example figure).

Run: ``python -m aigcsim.analysis.repro.rate_quality [--out results/repro] [--png-only]``.
Prints mean kB and LPIPS of each encoder's full stream, writes ``rate_quality.csv``
(mean kB received and LPIPS after ``k`` units) and ``rate_quality.{png,pdf}``.

In ``builtin:default`` the jpeg, raw and vq-mask entries are MEASURED on 13 real
photographs; the seq-words LPIPS curves are SYNTHETIC (their bits are measured). The
table and the figure mark which is which. Analog entries (``tisc``'s embedding,
``deepjscc``) are drawn at a fixed channel: their channel uses count as the bits they
would carry at :data:`ANALOG_SNR_DB` (Shannon, 3 dB gap), their quality is the analog
curve at that SNR (``OperatingPointTable.digital_equivalent``); their ids say so.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from aigcsim.analysis import plots
from aigcsim.analysis.repro.common import data_label, parse_args, print_table, save_outputs

ANALOG_SNR_DB = 10.0


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    from aigcsim.models.default_cache import DEFAULT_CACHE_PATH
    from aigcsim.models.optable import load_table
    from aigcsim.sim.schema import TableConfig
    from aigcsim.sim.table_source import load_source

    args = parse_args(__doc__.splitlines()[0], argv)
    encoders = load_table(DEFAULT_CACHE_PATH).encoder_ids
    table = load_source(TableConfig(source="builtin:default"), list(encoders))
    # analog entries (tisc, deepjscc) at the bits their channel uses carry at 10 dB
    table = table.digital_equivalent(ANALOG_SNR_DB)
    curves = plots.rate_quality_curves(table)
    last = curves.loc[curves.groupby("encoder")["k"].idxmax()]
    full = pd.DataFrame(
        {
            "encoder": last["encoder"],
            "lpips data": [data_label(table, e) for e in last["encoder"]],
            "mean kB": last["kbytes"],
            "mean LPIPS (all units)": last["quality"],
        }
    )
    print_table(f"Full streams, {table.source} ({len(table.image_ids)} images)", full)
    png = save_outputs(
        args, plots.plot_rate_quality(table), "rate_quality", {"rate_quality": curves}
    )
    print(f"wrote {png}")
    return full


if __name__ == "__main__":
    main()
