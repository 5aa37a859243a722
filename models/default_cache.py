"""The default catalogue's cache, shipped inside the package (``builtin:default``).

Rebuild (incrementally: only entries that are missing or stale are computed, and the
``vq-mask`` quality curves no default level reads any more are dropped) with::

    python -m aigcsim.models.default_cache          # or:
    aigcsim cache build --images builtin --encoders <DEFAULT_ENCODERS> \\
        --backend offline --out models/data/default.sqlite

Measured entries: ``jpeg``, ``raw``, ``vq-mask`` (real LPIPS on the real photographs) and
``deepjscc`` (analog: the shipped DeepJSCC's reconstructions measured at every SNR of
the grid). ``seq-words`` entries have measured bits and word orders but SYNTHETIC LPIPS
curves (no text-to-image model installs offline); they are flagged synthetic. So are
the ``cross-attn`` entries: real keywords (spaCy parse, MiniLM weights) and real region
JPEG bits (regions from a gradient-energy stand-in map), SYNTHETIC LPIPS/JPSQ curves;
and the ``tisc`` entries: real caption, attention-guided token (MiniLM), bits and
channel uses, SYNTHETIC LPIPS against SNR.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aigcsim.models.encoders.base import ImageRecord, QualityBackend

DEFAULT_CACHE_PATH = Path(str(resources.files("aigcsim.models.data") / "default.sqlite"))
DEFAULT_ENCODERS = "jpeg,raw,vq-mask,seq-words,cross-attn,tisc,deepjscc"


def rebuild(out: Path = DEFAULT_CACHE_PATH, from_scratch: bool = False) -> None:
    """Bring the default cache at ``out`` up to date (atomically replaced).

    The build starts from a copy of the existing file, so only entries whose content
    address is missing or changed are computed (``from_scratch``: start empty).
    """
    import os
    import shutil
    import sqlite3

    from aigcsim.models.backends.registry import BACKENDS
    from aigcsim.models.build import build_cache, expand_encoders
    from aigcsim.models.images import load_builtin

    tmp = out.with_name(out.name + ".partial")
    tmp.unlink(missing_ok=True)
    if out.is_file() and not from_scratch:
        shutil.copyfile(out, tmp)
    backend = BACKENDS.build("offline")
    images = list(load_builtin())
    report = build_cache(images, expand_encoders(DEFAULT_ENCODERS), backend, tmp)
    pruned = prune_vq_curves(tmp, images, backend)
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("VACUUM")
    con.close()
    os.replace(tmp, out)
    print(
        f"{out}: {report.computed} entries computed, {report.reused} reused, in "
        f"{report.seconds:.0f} s, {len(report.failed)} not available; {pruned} stale "
        "vq-mask curves dropped"
    )


def prune_vq_curves(path: Path, images: list[ImageRecord], backend: QualityBackend) -> int:
    """Delete the ``vq-quality`` model outputs of ``path`` that no default ``vq-mask``
    level of ``images`` reads with ``backend`` (curves measured with earlier parameters,
    e.g. the linear grid before the geometric one became the default); returns how many.
    Entries are untouched: a curve is only a memo of what an entry already holds."""
    from aigcsim.models.cache import Cache
    from aigcsim.models.encoders.vq_mask import VQMaskEncoder

    enc = VQMaskEncoder()
    with Cache(path) as cache:
        keep = {
            (im.sha256, enc.curve_key(level, backend, cache))
            for im in images
            for level in enc.levels()
        }
        rows = cache.con.execute(
            "SELECT image_sha256, model_key FROM model_outputs WHERE kind='vq-quality'"
        ).fetchall()
        stale = [r for r in rows if (r[0], r[1]) not in keep]
        with cache.con:
            cache.con.executemany(
                "DELETE FROM model_outputs WHERE image_sha256=? AND kind='vq-quality' "
                "AND model_key=?",
                stale,
            )
    return len(stale)


if __name__ == "__main__":
    import sys

    rebuild(from_scratch="--from-scratch" in sys.argv[1:])
