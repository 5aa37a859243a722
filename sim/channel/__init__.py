"""Channel models: path loss / shadowing statistics, small-scale fading, noise."""

from aigcsim.sim.channel.fading import FADING, FadingModel
from aigcsim.sim.channel.noise import db_to_linear, linear_to_db, thermal_noise_dbm
from aigcsim.sim.channel.pathloss import PATHLOSS, PathlossModel

__all__ = [
    "FADING",
    "PATHLOSS",
    "FadingModel",
    "PathlossModel",
    "db_to_linear",
    "linear_to_db",
    "thermal_noise_dbm",
]
