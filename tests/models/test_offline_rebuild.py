"""The faster offline build (batched LPIPS, memoised reference features and class,
neighbourhood-local prior fill) reproduces the shipped default cache.

The shipped cache is copied and one photograph's measured outputs are deleted (its VQ
tokens and the codebook are kept, as after a build's first image), then its entries are
rebuilt with today's code and compared with the shipped ones."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("lpips")

from aigcsim.models.build import build_cache  # noqa: E402
from aigcsim.models.default_cache import DEFAULT_CACHE_PATH  # noqa: E402
from aigcsim.models.images import load_builtin  # noqa: E402
from aigcsim.models.optable import load_table  # noqa: E402

IMAGE = "skimage/chelsea"  # the smallest photograph of the catalogue (451 x 300)
ENCODERS = [("jpeg", "q=40"), ("raw", ""), ("vq-mask", "prm/p=0.5")]


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from aigcsim.models.backends.offline import OfflineBackend

    image = next(im for im in load_builtin() if im.image_id == IMAGE)
    path = tmp_path_factory.mktemp("rebuild") / "cache.sqlite"
    shutil.copy(DEFAULT_CACHE_PATH, path)
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "DELETE FROM model_outputs WHERE image_sha256=? "
            "AND kind NOT IN ('vq-tokens', 'vq-codebook')",
            (image.sha256,),
        )
        con.execute("DELETE FROM cache_entries WHERE image_id=?", (image.image_id,))
    con.close()
    report = build_cache([image], ENCODERS, OfflineBackend(), path)
    assert report.computed == len(ENCODERS) and not report.failed
    return path, image.image_id


def test_rebuilt_entries_match_the_shipped_cache(rebuilt: tuple[Path, str]) -> None:
    path, image_id = rebuilt
    ids = [f"{f}/{lv}" if lv else f for f, lv in ENCODERS]
    shipped, new = load_table(DEFAULT_CACHE_PATH, ids), load_table(path, ids)
    i, k = shipped.image_ids.index(image_id), new.image_ids.index(image_id)
    assert set(new.quality) == set(shipped.quality) >= {"lpips", "psnr_db"}
    for e in ids:
        j, jj = shipped.encoder_index(e), new.encoder_index(e)
        n = int(shipped.num_units[i, j])
        assert int(new.num_units[k, jj]) == n
        np.testing.assert_array_equal(new.unit_bits[k, jj, :n], shipped.unit_bits[i, j, :n])
        for m in shipped.quality:
            got, want = new.quality[m][k, jj, : n + 1], shipped.quality[m][i, j, : n + 1]
            # LPIPS from float32 CPU convolutions in other batch sizes: float noise only
            tol = 1e-5 if m == "lpips" else 1e-9
            np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=f"{e} {m}")


def test_reference_features_and_class_are_computed_once_per_image() -> None:
    from aigcsim.models.backends.offline import OfflineBackend

    be = OfflineBackend()
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    imgs = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    first = be.lpips(ref, imgs)
    calls = []
    features = be.lpips_model.features
    be.lpips_model.features = lambda x: calls.append(x.shape[0]) or features(x)
    again = be.lpips(ref, imgs)
    np.testing.assert_array_equal(first, again)
    assert calls == [3]  # the images only: the reference's features were kept
    other = ref.copy()
    other[0, 0, 0] ^= 1
    be.lpips(other, imgs[:1])
    assert calls == [3, 1, 1]  # a new reference is computed
    top = be.top1(ref[None])
    assert np.array_equal(be.top1(ref[None]), top) and len(be._top1_single) == 1
