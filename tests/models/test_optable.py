import sqlite3

import numpy as np
import pytest

from aigcsim.kernel.registry import UserInputError
from aigcsim.models.optable import OperatingPointTable, load_table, save_table
from aigcsim.models.synthetic import make_synthetic_table, synthetic_encoder_ids


def test_synthetic_table_is_reproducible_and_flagged():
    a, b = make_synthetic_table(6, seed=4), make_synthetic_table(6, seed=4)
    assert np.array_equal(a.unit_bits, b.unit_bits)
    assert np.array_equal(a.quality["lpips"], b.quality["lpips"])
    assert a.synthetic.all()
    assert all(p["measured"] is False for p in a.provenance.values())
    assert not np.array_equal(a.unit_bits, make_synthetic_table(6, seed=5).unit_bits)


def test_synthetic_word_orders_rank_as_published():
    """Words needed to reach LPIPS 0.6: lowest-lpips <= most- <= least-attentive on average."""
    t = make_synthetic_table(60, seed=1)
    q = t.quality["lpips"]

    def words_to_target(enc: str) -> float:
        j = t.encoder_index(enc)
        meets = q[:, j, :] <= 0.6
        return float(np.where(meets.any(1), meets.argmax(1), 99).mean())

    lo, most, least = (
        words_to_target(f"seq-words/{p}")
        for p in ("lowest-lpips", "most-attentive", "least-attentive")
    )
    assert lo <= most < least


def test_synthetic_vq_anchor_and_sizes():
    t = make_synthetic_table(40, seed=2)
    j = t.encoder_index("vq-mask/prm/p=0.25")
    full = t.quality["lpips"][np.arange(40), j, t.num_units[:, j]]
    assert abs(full.mean() - 0.1193) < 0.01  # LaMI-GO p=0.25, 28/32 steps
    k35 = t.encoder_index("vq-mask/prm/p=0.35")
    assert t.total_bits[:, k35].mean() < t.total_bits[:, j].mean()


def test_round_trip_sqlite(tmp_path):
    t = make_synthetic_table(3, seed=0)
    path = save_table(t, tmp_path / "t.sqlite")
    r = load_table(path)
    order = [r.encoder_index(e) for e in t.encoder_ids]
    assert r.image_ids == t.image_ids
    assert np.array_equal(r.num_units[:, order], t.num_units)
    sel = r.select(t.encoder_ids)
    assert np.array_equal(sel.unit_bits, t.unit_bits)
    assert np.array_equal(sel.quality["lpips"], t.quality["lpips"])
    assert np.array_equal(sel.decode_time_s, t.decode_time_s)
    assert sel.synthetic.all()
    assert sel.provenance == t.provenance
    assert [e.loss_tolerant for e in sel.encoders] == [e.loss_tolerant for e in t.encoders]
    assert not list(tmp_path.glob("*.partial"))


def test_cum_bits_and_select():
    t = make_synthetic_table(2, seed=0)
    s = t.select(["jpeg/q=40", "seq-words/natural"])
    assert s.encoder_ids == ("jpeg/q=40", "seq-words/natural")
    assert s.max_units == int(s.num_units.max())
    assert np.allclose(s.cum_bits[:, :, -1], s.total_bits)


def test_unknown_encoder_suggests():
    t = make_synthetic_table(2, seed=0)
    with pytest.raises(UserInputError, match="Did you mean 'jpeg/q=40'"):
        t.encoder_index("jpeg/q=41")


def test_bad_files_are_rejected_clearly(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        load_table(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(UserInputError, match="not a readable aigcsim"):
        load_table(junk)
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE x(a)")
    con.commit()
    con.close()
    with pytest.raises(UserInputError, match="not a readable|not an aigcsim"):
        load_table(foreign)


def test_truncated_blob_is_rejected(tmp_path):
    t = make_synthetic_table(1, seed=0).select(["jpeg/q=40"])
    path = save_table(t, tmp_path / "t.sqlite")
    con = sqlite3.connect(path)
    con.execute("UPDATE op_points SET unit_bits = X'00'")
    con.commit()
    con.close()
    with pytest.raises(UserInputError, match="invalid operating-point table"):
        load_table(path)


def test_validation_rejects_inconsistent_arrays():
    t = make_synthetic_table(1, seed=0).select(["jpeg/q=40"])
    with pytest.raises(ValueError, match="num_units"):
        OperatingPointTable(
            t.image_ids,
            t.encoders,
            t.num_units[:, :0],
            t.unit_bits,
            t.quality,
            t.decode_time_s,
            t.synthetic,
        )


def test_encoder_ids_cover_all_families():
    ids = synthetic_encoder_ids()
    for fam in ("seq-words", "vq-mask", "cross-attn", "jpeg"):
        assert any(i.startswith(fam + "/") for i in ids)
    assert "raw" in ids
