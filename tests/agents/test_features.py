"""The permutation-invariant user-set extractor and PPO policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from aigcsim.agents.envs.spaces import NUM_FEATURES, action_space, observation_space
from aigcsim.agents.features import UserSetActorCriticPolicy, UserSetExtractor

torch.set_num_threads(1)
U = 6


def _obs(batch: int = 3, seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    users = rng.uniform(-1, 1, (batch, U, NUM_FEATURES)).astype(np.float32)
    mask = (rng.uniform(size=(batch, U)) < 0.6).astype(np.float32)
    mask[:, 0] = 1.0
    users *= mask[..., None]
    return {"users": torch.tensor(users.reshape(batch, -1)), "mask": torch.tensor(mask)}


def _permute(obs: dict[str, torch.Tensor], perm: np.ndarray) -> dict[str, torch.Tensor]:
    users = obs["users"].reshape(-1, U, NUM_FEATURES)[:, perm].reshape(obs["users"].shape)
    return {"users": users, "mask": obs["mask"][:, perm]}


def test_extractor_is_equivariant_per_user_and_invariant_in_summary():
    torch.manual_seed(0)
    ext = UserSetExtractor(observation_space(U), embed_dim=8, hidden_dim=16)
    obs = _obs()
    perm = np.random.default_rng(1).permutation(U)
    out, out_p = ext(obs), ext(_permute(obs, perm))
    d = 8
    assert out.shape == (3, U * d + 2 * d) and ext.features_dim == U * d + 2 * d
    per, per_p = out[:, : U * d].reshape(3, U, d), out_p[:, : U * d].reshape(3, U, d)
    torch.testing.assert_close(per_p, per[:, perm])
    torch.testing.assert_close(out_p[:, U * d :], out[:, U * d :])
    inactive = obs["mask"] == 0
    assert inactive.any() and not per[inactive].any()  # inactive slots give zeros


def test_extractor_ignores_what_inactive_rows_hold():
    ext = UserSetExtractor(observation_space(U), embed_dim=8, hidden_dim=16)
    obs = _obs()
    noisy = {k: v.clone() for k, v in obs.items()}
    rows = noisy["users"].reshape(3, U, NUM_FEATURES)
    rows[noisy["mask"] == 0] = 0.5
    torch.testing.assert_close(ext(noisy), ext(obs))


@pytest.mark.parametrize("idle", [False, True])
def test_policy_actions_are_equivariant_and_start_near_equal_share(idle):
    torch.manual_seed(0)
    policy = UserSetActorCriticPolicy(
        observation_space(U), action_space(U, idle), lambda _: 3e-4, embed_dim=8, hidden_dim=16
    )
    obs = _obs()
    perm = np.random.default_rng(2).permutation(U)
    with torch.no_grad():
        a, v, _ = policy(obs, deterministic=True)
        a_p, v_p, _ = policy(_permute(obs, perm), deterministic=True)
    torch.testing.assert_close(a_p[:, :U], a[:, :U][:, perm])
    torch.testing.assert_close(v_p, v)
    assert a.shape == (3, U + idle) and a.abs().max() < 0.05  # about a = 0: equal share


def test_log_prob_counts_only_active_users():
    torch.manual_seed(0)
    policy = UserSetActorCriticPolicy(
        observation_space(U), action_space(U), lambda _: 3e-4, embed_dim=8, hidden_dim=16
    )
    obs = _obs()
    actions = torch.randn(3, U)
    _, lp, ent = policy.evaluate_actions(obs, actions)
    changed = actions.clone()
    changed[obs["mask"] == 0] += 5.0  # entries of inactive users do not act
    _, lp2, ent2 = policy.evaluate_actions(obs, changed)
    torch.testing.assert_close(lp2, lp)
    torch.testing.assert_close(ent2, ent)
    dist = policy.get_distribution(obs).distribution
    expected = (dist.log_prob(actions) * obs["mask"]).sum(dim=1)
    torch.testing.assert_close(lp, expected)


def test_joint_layout_levels_column_and_two_entries_per_user():
    obs_space = spaces.Dict(
        {**observation_space(U).spaces, "levels": spaces.Box(0, 1, (U,), np.float32)}
    )
    policy = UserSetActorCriticPolicy(
        obs_space, action_space(U, per_user=2), lambda _: 3e-4, embed_dim=8, hidden_dim=16
    )
    obs = _obs() | {"levels": torch.rand(3, U)}
    perm = np.random.default_rng(3).permutation(U)
    permuted = _permute(obs, perm) | {"levels": obs["levels"][:, perm]}
    with torch.no_grad():
        a = policy(obs, deterministic=True)[0]
        a_p = policy(permuted, deterministic=True)[0]
    torch.testing.assert_close(a_p[:, :U], a[:, :U][:, perm])
    torch.testing.assert_close(a_p[:, U:], a[:, U:][:, perm])
