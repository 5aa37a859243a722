"""Print a markdown table of a cache's operating points (the README's catalogue table).

    python -m aigcsim.models.catalogue_report [CACHE]     # default: the shipped default cache

Per encoder configuration: whether it is measured, mean kB per image (whole stream),
units per image, mean LPIPS and downstream-task agreement after all units.
"""

from __future__ import annotations

import sys

import numpy as np

from aigcsim.models.default_cache import DEFAULT_CACHE_PATH
from aigcsim.models.optable import load_table


def report(path: str) -> str:
    full = load_table(path)
    lines = [
        "| encoder | data | mean kB / image | units / image | mean LPIPS (all units) "
        "| task agreement (all units) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for enc in full.encoder_ids:
        t = load_table(path, [enc])
        i = np.arange(len(t.image_ids))
        n = t.num_units[:, 0]
        lp = t.quality["lpips"][i, 0, n].mean()
        ta = t.quality.get("task_agreement")
        agree = f"{ta[i, 0, n].mean():.0%}" if ta is not None else "-"
        kind = "SYNTHETIC quality" if t.synthetic.any() else "measured"
        kb = t.total_bits[:, 0].mean() / 8e3
        lines.append(f"| `{enc}` | {kind} | {kb:.2f} | {n.mean():.1f} | {lp:.3f} | {agree} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(sys.argv[1] if len(sys.argv) > 1 else str(DEFAULT_CACHE_PATH)))
