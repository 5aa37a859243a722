"""The default catalogue's cache shipped in the package (``builtin:default``): its
provenance and shape, and that rebuilding entries gives what is shipped."""

from __future__ import annotations

import numpy as np
import pytest

from aigcsim.models.build import build_cache, expand_encoders
from aigcsim.models.cache import Cache
from aigcsim.models.default_cache import DEFAULT_CACHE_PATH, DEFAULT_ENCODERS
from aigcsim.models.images import builtin_catalogue, load_builtin
from aigcsim.models.optable import load_table


@pytest.fixture(scope="module")
def shipped():
    return load_table(DEFAULT_CACHE_PATH)


def test_shipped_cache_shape_and_provenance(shipped):
    assert len(shipped.image_ids) == len(builtin_catalogue()) >= 12
    wanted = {f"{f}/{lv}" if lv else f for f, lv in expand_encoders(DEFAULT_ENCODERS)}
    assert set(shipped.encoder_ids) == wanted
    for j, enc in enumerate(shipped.encoder_ids):
        prov = shipped.provenance[enc]
        assert prov["backend"] == "offline"
        synthetic = enc.startswith(("seq-words/", "cross-attn/", "tisc/"))
        assert shipped.synthetic[:, j].all() == synthetic
        assert prov["measured"] is (not synthetic)
    with Cache(DEFAULT_CACHE_PATH, read_only=True) as c:
        info = c.info()
    prefixes = ("seq-words/", "cross-attn/", "tisc/")
    n_synthetic = sum(e.startswith(prefixes) for e in shipped.encoder_ids)
    assert n_synthetic == 5 + 3 + 4
    assert info["synthetic_entries"] == n_synthetic * len(shipped.image_ids)


def test_shipped_quality_is_sane(shipped):
    lp = shipped.quality["lpips"]
    q40 = shipped.encoder_index("jpeg/q=40")
    q90 = shipped.encoder_index("jpeg/q=90")
    assert np.all(lp[:, q90, 1] < lp[:, q40, 1])  # better JPEG, lower LPIPS
    raw = shipped.encoder_index("raw")
    assert np.allclose(lp[:, raw, 1], 0.0, atol=1e-6)
    vq = shipped.encoder_index("vq-mask/prm/p=0.25")
    n = shipped.num_units[:, vq]
    full = lp[np.arange(n.size), vq, n]
    assert np.all(full < lp[:, vq, 1])  # all packets beat the header alone


def test_rebuilding_jpeg_entries_matches_shipped(tmp_path, shipped):
    from aigcsim.models.backends.offline import OfflineBackend

    image = next(iter(load_builtin()))
    out = tmp_path / "re.sqlite"
    build_cache([image], [("jpeg", "q=40"), ("raw", "")], OfflineBackend(), out)
    rebuilt = load_table(out)
    for enc in ("jpeg/q=40", "raw"):
        i, j = shipped.image_ids.index(image.image_id), shipped.encoder_index(enc)
        r = rebuilt.encoder_index(enc)
        # bits come from the JPEG library, LPIPS from float32 CPU maths: allow tiny drift
        assert rebuilt.unit_bits[0, r, 0] == pytest.approx(shipped.unit_bits[i, j, 0], rel=0.02)
        assert rebuilt.quality["lpips"][0, r, 1] == pytest.approx(
            shipped.quality["lpips"][i, j, 1], abs=2e-3
        )


@pytest.mark.slow
def test_rebuilding_vq_mask_matches_shipped(tmp_path, shipped):
    from aigcsim.models.backends.offline import OfflineBackend

    image = next(iter(load_builtin()))
    out = tmp_path / "re.sqlite"
    build_cache([image], [("vq-mask", "prm/p=0.25")], OfflineBackend(), out)
    rebuilt = load_table(out)
    i, j = shipped.image_ids.index(image.image_id), shipped.encoder_index("vq-mask/prm/p=0.25")
    n = int(shipped.num_units[i, j])
    assert rebuilt.num_units[0, 0] == n
    assert np.allclose(rebuilt.unit_bits[0, 0, :n], shipped.unit_bits[i, j, :n])
    assert np.allclose(
        rebuilt.quality["lpips"][0, 0, : n + 1], shipped.quality["lpips"][i, j, : n + 1], atol=2e-3
    )


def test_stale_vq_curves_are_pruned_and_current_ones_kept(tmp_path):
    """The rebuild drops ``vq-quality`` memos no default level reads (e.g. a grid that is
    no longer the default); the 13 x 5 current curves stay, and entries are untouched."""
    import shutil
    import sqlite3

    from aigcsim.models.backends.offline import OfflineBackend
    from aigcsim.models.default_cache import prune_vq_curves

    path = tmp_path / "c.sqlite"
    shutil.copy(DEFAULT_CACHE_PATH, path)
    images = list(load_builtin())
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "INSERT INTO model_outputs VALUES(?, 'vq-quality', '{\"stale\": 1}', x'00')",
            (images[0].sha256,),
        )
    before = con.execute("SELECT COUNT(*) FROM model_outputs WHERE kind='vq-quality'").fetchone()
    entries = con.execute("SELECT * FROM cache_entries ORDER BY 1, 2").fetchall()
    con.close()
    dropped = prune_vq_curves(path, images, OfflineBackend())
    con = sqlite3.connect(path)
    after = con.execute("SELECT COUNT(*) FROM model_outputs WHERE kind='vq-quality'").fetchone()
    stale = con.execute("SELECT COUNT(*) FROM model_outputs WHERE model_key LIKE '%stale%'")
    assert stale.fetchone()[0] == 0
    assert after[0] == len(images) * 5 and dropped == before[0] - after[0] >= 1
    assert con.execute("SELECT * FROM cache_entries ORDER BY 1, 2").fetchall() == entries
    con.close()
    assert prune_vq_curves(path, images, OfflineBackend()) == 0
    # every default entry still finds its curve: nothing to recompute
    from aigcsim.models.build import build_encoders, missing_entries

    specs = expand_encoders("vq-mask")
    built = build_encoders(specs)
    backend = OfflineBackend()
    with Cache(path) as cache:
        for image in images[:2]:
            for level in built["vq-mask"].levels():
                key = built["vq-mask"].curve_key(level, backend, cache)
                assert cache.con.execute(
                    "SELECT 1 FROM model_outputs WHERE image_sha256=? AND model_key=?",
                    (image.sha256, key),
                ).fetchone()
            todo, _ = missing_entries(cache, image, specs, built, backend.name, backend.model_ids())
            assert todo == []
