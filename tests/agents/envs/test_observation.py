"""The vectorised user table against a per-user reference written from the documented
column formulas (aigcsim.agents.envs.observation), over whole rollouts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv
from aigcsim.agents.envs.spaces import FEATURES_V0, NUM_FEATURES, user_table

MAX_USERS = 16  # rl-headroom's users.count


def _clip(x: float) -> float:
    return min(max(x, -1.0), 1.0)


def reference_rows(env: BandwidthAllocationEnv) -> dict[int, list[float]]:
    """Row of every active user, one user at a time, from the module docstring."""
    sim, state, obs = env.simulation, env._state, env._observer
    assert state is not None and obs is not None
    T = env.time_scale_s
    n = state.num_users
    duration = float(sim.scenario.duration_s)
    open_by_user = np.zeros(sim.num_users, int)
    for req in sim.open_requests.values():
        open_by_user[req.user] += 1
    rows = {}
    for j, u in enumerate(state.user_ids.tolist()):
        se_full = float(state.spectral_efficiency_bps_hz[j])
        if sim.scenario.cell.power_mode == "per-user" and n > 1:
            snr = float(state.snr_db[j]) - 10.0 * math.log10(n)
            se_full = float(sim.link.spectral_efficiency(np.array([snr]))[0])
        rate = se_full * state.bandwidth_hz
        bits = float(state.bits_left_total[j])
        finish = bits / rate if rate > 0 else math.inf
        slack = float(state.deadline_slack_s[j])
        if math.isinf(slack):
            margin = T
        elif math.isinf(finish):
            margin = -T
        else:
            margin = slack - finish
        queued = len(sim.user_queue[u])
        at_gpus = max(open_by_user[u] - queued - int(sim.active[u]), 0)
        deadline = obs.deadline_s[u]
        stream = float(sim.table.cum_bits.reshape(-1, sim.table.max_units + 1)[sim.row[u], -1])
        row = [
            1.0,
            float(state.snr_db[j]) / 40.0,
            float(state.spectral_efficiency_bps_hz[j]) / 8.0,
            se_full / 8.0,
            math.log10(1.0 + bits) / 7.0,
            min(finish, T) / T,
            (T if math.isinf(slack) else slack) / T,
            margin / T,
            queued / 4.0,
            at_gpus / 4.0,
            max(duration - state.time_s, 0.0) / duration,
            1.0 if math.isinf(deadline) else deadline / T,
            math.log10(1.0 + stream) / 7.0,
            float(state.quality_gain_next[j]),
        ]
        if obs.encoder_column:  # the current request's encoder among the run's, / (E - 1)
            encoders = list(sim.table.encoder_ids)
            current = encoders[sim.current[u].encoder]
            row.append(obs.encoders.index(current) / max(len(obs.encoders) - 1, 1))
        rows[u] = [_clip(x) for x in row]
    return rows


@pytest.mark.parametrize(
    ("power_mode", "encoder_column"),
    [("total-power", True), ("per-user", True), ("total-power", False)],
)
def test_table_matches_the_per_user_reference(power_mode, encoder_column):
    over = {"duration_s": 3.0, "cell.power_mode": power_mode}
    env = BandwidthAllocationEnv(
        "rl-headroom",
        max_users=MAX_USERS,
        overrides=over,
        decision_intervals=2,
        encoder_column=encoder_column,
    )
    columns = NUM_FEATURES if encoder_column else len(FEATURES_V0)
    assert env.num_features == columns == env.observation_space["users"].shape[0] // MAX_USERS
    obs, _ = env.reset(seed=11)
    rng = np.random.default_rng(11)
    checked = 0
    seen_codes: set[float] = set()
    done = False
    while not done:
        table = user_table(obs["users"], columns)
        expected = np.zeros((MAX_USERS, columns), np.float32)
        if env._state is not None:
            for u, row in reference_rows(env).items():
                expected[u] = row
                if encoder_column:
                    seen_codes.add(row[-1])
            checked += env._state.num_users
        np.testing.assert_allclose(table, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(obs["mask"], (expected[:, 0] > 0).astype(np.int8))
        obs, _, done, _, _ = env.step(rng.uniform(-1, 1, MAX_USERS).astype(np.float32))
    assert checked > 100
    if encoder_column:  # both groups' encoders were seen: the column takes 0 and 1
        assert seen_codes == {0.0, 1.0}


def _fresh_table(env: BandwidthAllocationEnv) -> np.ndarray:
    """The table of the current state with the kept static columns forgotten (every
    column filled anew)."""
    observer = env._observer
    assert observer is not None
    observer._feats_key = None
    return observer.table(env._state)


@pytest.mark.parametrize("joint", [False, True])
@pytest.mark.parametrize("subbands", [1, 4])
def test_kept_static_columns_give_the_freshly_filled_table(joint, subbands):
    """Consecutive observations of the same users and requests reuse the static
    columns (active, deadline, stream_bits, encoder); the table is byte for byte the
    one filled from scratch, also when the joint env switches a request's encoder."""
    from aigcsim.agents.envs.joint_env import JointEncodingAllocationEnv

    over = {"duration_s": 3.0, "cell.subbands": subbands}
    kwargs = {"act_per_subband": subbands > 1, "decision_intervals": 1}
    if joint:
        env: BandwidthAllocationEnv = JointEncodingAllocationEnv(
            "rl-headroom",
            encoder_levels=["jpeg/q=10", "jpeg/q=40", "jpeg/q=80"],
            max_users=MAX_USERS,
            overrides=over,
            **kwargs,
        )
    else:
        env = BandwidthAllocationEnv("rl-headroom", max_users=MAX_USERS, overrides=over, **kwargs)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(3)
    reused = 0
    done = False
    while not done:
        assert _fresh_table(env).tobytes() == obs["users"].tobytes()
        observer = env._observer
        assert observer is not None
        observer.table(env._state)  # keeps this state's static columns again
        key = observer._feats_key
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        obs, _, done, _, _ = env.step(action)
        reused += env._state is not None and observer._feats_key == key  # kept ones used
    assert reused > 50
