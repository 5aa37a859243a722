"""The default catalogue's cache, shipped inside the package (``builtin:default``).

Rebuild it with::

    python -m aigcsim.models.default_cache          # or:
    aigcsim cache build --images builtin --encoders <DEFAULT_ENCODERS> \\
        --backend offline --out models/data/default.sqlite

Measured entries: ``jpeg``, ``raw``, ``vq-mask`` (real LPIPS on the real photographs).
``seq-words`` entries have measured bits and word orders but SYNTHETIC LPIPS curves
(no text-to-image model installs offline); they are flagged synthetic. So are the
``cross-attn`` entries: real keywords (spaCy parse, MiniLM weights) and real region JPEG
bits (regions from a gradient-energy stand-in map), SYNTHETIC LPIPS/JPSQ curves.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_CACHE_PATH = Path(str(resources.files("aigcsim.models.data") / "default.sqlite"))
DEFAULT_ENCODERS = "jpeg,raw,vq-mask,seq-words,cross-attn"


def rebuild(out: Path = DEFAULT_CACHE_PATH) -> None:
    """Build the default cache from scratch into ``out`` (atomically replaced)."""
    import os

    from aigcsim.models.backends.registry import BACKENDS
    from aigcsim.models.build import build_cache, expand_encoders
    from aigcsim.models.images import load_builtin

    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    report = build_cache(
        list(load_builtin()), expand_encoders(DEFAULT_ENCODERS), BACKENDS.build("offline"), tmp
    )
    import sqlite3

    con = sqlite3.connect(tmp)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("VACUUM")
    con.close()
    os.replace(tmp, out)
    print(
        f"{out}: {report.computed} entries in {report.seconds:.0f} s "
        f"({report.seconds / max(report.images, 1):.1f} s per image), "
        f"{len(report.failed)} not available"
    )


if __name__ == "__main__":
    rebuild()
