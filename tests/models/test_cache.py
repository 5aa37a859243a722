"""The cache: round trip, content addressing, kill-and-resume, concurrent readers,
and bad files rejected clearly. Uses a small test-only encoder (cheap, deterministic)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.cache import Cache, entry_key, export_parquet
from aigcsim.models.encoders.base import ImageRecord, UnitStream
from aigcsim.models.images import pixel_sha256
from aigcsim.models.optable import load_table

ROOT = Path(__file__).resolve().parents[2]


def _image(i: int) -> ImageRecord:
    px = np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return ImageRecord(f"img{i}", pixel_sha256(px), px, "a test caption", "test")


def _stream(enc: str, n: int = 3, synthetic: bool = False) -> UnitStream:
    return UnitStream(
        enc,
        np.arange(1, n + 1) * 100.0,
        {"lpips": np.linspace(0.9, 0.1, n + 1)},
        np.full(n + 1, 0.01),
        loss_tolerant=False,
        synthetic=synthetic,
        provenance={"backend": "test", "code_version": "t1"},
    )


def test_round_trip_and_info(tmp_path):
    path = tmp_path / "c.sqlite"
    with Cache(path) as c:
        for i in range(3):
            c.put_entry(_image(i), _stream("jpeg/q=40"), f"k{i}")
            c.put_entry(_image(i), _stream("seq-words/natural", 5, synthetic=True), f"s{i}")
        info = c.info()
    assert info["images"] == 3 and info["entries"] == 6
    assert info["measured_entries"] == 3 and info["synthetic_entries"] == 3
    t = load_table(path)
    assert t.image_ids == ("img0", "img1", "img2")
    j = t.encoder_index("seq-words/natural")
    assert t.synthetic[:, j].all() and not t.synthetic[:, t.encoder_index("jpeg/q=40")].any()
    assert np.allclose(t.quality["lpips"][0, j, :6], np.linspace(0.9, 0.1, 6))
    n = export_parquet(path, tmp_path / "x.parquet")
    assert n == 3 * (4 + 6)


def test_entry_key_is_content_addressed():
    a = entry_key("sha", "offline", {"lpips": "alex"}, "jpeg/q=40", {"x": 1}, "v1")
    assert a == entry_key("sha", "offline", {"lpips": "alex"}, "jpeg/q=40", {"x": 1}, "v1")
    for changed in [
        ("sha2", "offline", {"lpips": "alex"}, "jpeg/q=40", {"x": 1}, "v1"),
        ("sha", "offline", {"lpips": "vgg"}, "jpeg/q=40", {"x": 1}, "v1"),
        ("sha", "offline", {"lpips": "alex"}, "jpeg/q=40", {"x": 2}, "v1"),
        ("sha", "offline", {"lpips": "alex"}, "jpeg/q=40", {"x": 1}, "v2"),
    ]:
        assert entry_key(*changed) != a


def test_model_outputs_are_computed_once(tmp_path):
    calls = []
    with Cache(tmp_path / "c.sqlite") as c:
        for _ in range(3):
            v = c.get_or_compute("sha", "tokens", "k", lambda: calls.append(1) or np.arange(5))
            assert np.array_equal(v, np.arange(5))
    with Cache(tmp_path / "c.sqlite") as c:
        c.get_or_compute("sha", "tokens", "k", lambda: calls.append(1) or np.arange(5))
    assert len(calls) == 1


def test_stale_entry_is_detected(tmp_path):
    with Cache(tmp_path / "c.sqlite") as c:
        c.put_entry(_image(0), _stream("jpeg/q=40"), "old")
        assert c.has_entry("img0", "jpeg/q=40", "old")
        assert not c.has_entry("img0", "jpeg/q=40", "new")


def test_bad_files_rejected(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        Cache(tmp_path / "none.sqlite", read_only=True)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"\x00garbage" * 500)
    with pytest.raises(UserInputError, match="not an aigcsim cache"):
        Cache(junk)
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE users(a)")
    con.commit()
    con.close()
    with pytest.raises(UserInputError, match="not an aigcsim cache"):
        Cache(foreign)


BUILD_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    from aigcsim.models.build import build_cache
    from aigcsim.models.encoders.base import ENCODERS, ImageRecord, UnitStream
    from aigcsim.models.images import pixel_sha256
    from aigcsim.kernel.registry import NoParams

    class Slow:
        family, code_version, loss_tolerant, params_dict = "slowtest", "s1", False, {{}}
        def levels(self):
            return ["a", "b"]
        def encode(self, image, level, backend, store):
            tokens = store.get_or_compute(image.sha256, "tokens", "m", lambda: image.pixels.mean(2))
            time.sleep(0.15)
            n = 4
            q = np.linspace(0.9, float(tokens.mean()) / 255, n + 1)
            return UnitStream(f"slowtest/{{level}}", np.full(n, 64.0), {{"lpips": q}},
                              np.zeros(n + 1), False, False, {{}})

    ENCODERS.register("slowtest", params=NoParams)(lambda p: Slow())

    class Backend:
        name = "test"
        def model_ids(self):
            return {{"m": "1"}}
        def lpips(self, ref, imgs):
            return np.zeros(len(imgs))

    imgs = []
    for i in range(6):
        px = np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        imgs.append(ImageRecord(f"img{{i}}", pixel_sha256(px), px, "cap", "t"))
    r = build_cache(imgs, [("slowtest", "a"), ("slowtest", "b")], Backend(), sys.argv[1])
    print("computed", r.computed, "reused", r.reused)
    """
)


def test_kill_and_resume(tmp_path):
    script = tmp_path / "build.py"
    script.write_text(BUILD_SCRIPT.format(root=str(ROOT)))
    cache = tmp_path / "c.sqlite"
    proc = subprocess.Popen([sys.executable, str(script), str(cache)], stdout=subprocess.PIPE)
    deadline = time.time() + 60
    done_before = 0
    while time.time() < deadline:  # kill once a few entries are in
        time.sleep(0.1)
        if cache.exists():
            try:
                with Cache(cache, read_only=True) as c:  # a concurrent reader
                    done_before = c.info()["entries"]
            except UserInputError:
                continue
            if done_before >= 3:
                break
    proc.kill()
    proc.wait()
    with Cache(cache, read_only=True) as c:
        partial = c.info()["entries"]
    assert 3 <= partial < 12
    out = subprocess.run(
        [sys.executable, str(script), str(cache)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    computed, reused = int(out.split()[1]), int(out.split()[3])
    assert reused == partial and computed == 12 - partial
    t = load_table(cache)
    assert t.num_units.shape == (6, 2)
    assert np.all(t.num_units == 4)
