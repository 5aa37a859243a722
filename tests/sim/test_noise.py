import numpy as np
import pytest

from aigcsim.sim.channel.noise import db_to_linear, linear_to_db, thermal_noise_dbm


def test_thermal_noise_matches_minus_174():
    b = np.array([1.0, 180e3, 20e6, 100e6])
    out = thermal_noise_dbm(b, 7.0)
    np.testing.assert_allclose(out, -174.0 + 10 * np.log10(b) + 7.0, atol=0.03)
    assert out.shape == b.shape
    assert np.ndim(thermal_noise_dbm(1e6, 0.0)) == 0


def test_temperature_scaling():
    a = thermal_noise_dbm(1e6, 0.0, temperature_k=290.0)
    b = thermal_noise_dbm(1e6, 0.0, temperature_k=580.0)
    assert b - a == pytest.approx(10 * np.log10(2.0))
    with pytest.raises(ValueError):
        thermal_noise_dbm(1e6, 0.0, temperature_k=0.0)


def test_db_helpers_round_trip():
    x = np.array([-30.0, 0.0, 3.0, 47.5])
    np.testing.assert_allclose(linear_to_db(db_to_linear(x)), x)
    assert db_to_linear(10.0) == pytest.approx(10.0)
    assert linear_to_db(0.0) == -np.inf
