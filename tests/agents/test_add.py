"""The ADD agent: shapes, permutation symmetry, a tiny learn run, save/load, critic sanity."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from stable_baselines3.common.type_aliases import DictReplayBufferSamples

from aigcsim.agents.add import ADD, ADDConfig, split_obs
from aigcsim.agents.envs.allocation_env import BandwidthAllocationEnv
from aigcsim.agents.envs.spaces import ACTIVE, NUM_FEATURES
from tests.scenario_data import tiny

torch.set_num_threads(1)
U = 8
SMALL_NET = {"d_model": 16, "n_heads": 2, "hidden": (32, 32), "diffusion_steps": 4}

TINY = tiny("tiny-add")  # tests/scenario_data.py SMALL, 2 s and 6 users


def _obs(batch: int, seed: int = 0, active: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = rng.uniform(-1, 1, (batch, U, NUM_FEATURES)).astype(np.float32)
    mask = (rng.random((batch, U)) < 0.6).astype(np.int8)
    if active is not None:
        mask[:] = 0
        mask[:, :active] = 1
    mask[0, 0] = 1
    users *= mask[..., None]
    users[..., ACTIVE] = mask
    return {"users": users.reshape(batch, -1), "mask": mask}


def _permute(obs: dict[str, np.ndarray], perm: np.ndarray) -> dict[str, np.ndarray]:
    b = obs["mask"].shape[0]
    users = obs["users"].reshape(b, U, NUM_FEATURES)[:, perm]
    return {"users": users.reshape(b, -1), "mask": obs["mask"][:, perm]}


def _tensors(obs):
    return {k: torch.as_tensor(v) for k, v in obs.items()}


@pytest.fixture(scope="module")
def agent() -> ADD:
    return ADD(max_users=U, seed=0, **SMALL_NET)


def test_actions_in_box_and_handle_inactive(agent):
    obs = _obs(5, seed=1)
    obs["mask"][1] = 0  # a row without active users
    obs["users"][1] = 0
    for det in (True, False):
        act, state = agent.predict(obs, deterministic=det)
        assert state is None
        assert act.shape == (5, U) and act.dtype == np.float32
        assert np.all(np.isfinite(act)) and np.all(np.abs(act) <= 1.0)
    single, _ = agent.predict({k: v[0] for k, v in obs.items()})
    assert single.shape == (U,)
    np.testing.assert_allclose(single, agent.predict(obs)[0][0], atol=1e-5)
    tokens, mask, _ = agent._obs_tensors(obs)
    q1, q2 = agent.critic(tokens, mask, torch.as_tensor(act))
    assert torch.isfinite(q1).all() and torch.isfinite(q2).all()
    # actions of inactive slots do not change Q
    other = torch.as_tensor(act).clone()
    other[~mask] = -other[~mask] + 0.3
    torch.testing.assert_close(agent.critic(tokens, mask, other)[0], q1)


@pytest.mark.parametrize("mode", ["zero", "seed"])
def test_permutation_equivariance(mode):
    model = ADD(max_users=U, seed=0, deterministic_noise=mode, **SMALL_NET)
    obs = _obs(4, seed=2)
    perm = np.random.default_rng(3).permutation(U)
    pobs = _permute(obs, perm)
    tokens, mask, _ = model._obs_tensors(obs)
    ptokens, pmask, _ = model._obs_tensors(pobs)
    noise = model._noise(4, deterministic=True)
    with torch.no_grad():
        act = model.actor.sample(tokens, mask, noise)
        pact = model.actor.sample(ptokens, pmask, noise[:, :, perm])
        torch.testing.assert_close(pact, act[:, perm], atol=1e-5, rtol=1e-5)
        q = model.critic(tokens, mask, act)
        pq = model.critic(ptokens, pmask, act[:, perm])
    for a, b in zip(q, pq, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    if mode == "zero":  # predict() itself is equivariant with the zero-noise chain
        np.testing.assert_allclose(model.predict(pobs)[0], act.numpy()[:, perm], atol=1e-5)


def test_tiny_learn_run_and_save_load(tmp_path):
    env = BandwidthAllocationEnv(copy.deepcopy(TINY), max_users=U)
    model = ADD(env, seed=1, batch_size=32, learning_starts=64, buffer_size=500, **SMALL_NET)
    model.learn(200)
    assert model.num_timesteps == 200
    assert model.n_updates == 200 - 64
    assert set(model.last_losses) >= {"critic_loss", "actor_loss", "q_mean"}
    assert all(math.isfinite(v) for v in model.last_losses.values())
    obs = _obs(6, seed=4)
    act, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model")  # ".zip" added like SB3
    loaded = ADD.load(tmp_path / "model.zip")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], act)
    assert loaded.config == model.config and loaded.num_timesteps == 200
    assert loaded.observation_space.spaces["users"].shape == (U * NUM_FEATURES,)
    seeded = ADD(max_users=U, deterministic_noise="seed", **SMALL_NET)
    seeded.actor.load_state_dict(model.actor.state_dict())
    a1, a2 = seeded.predict(obs)[0], seeded.predict(obs)[0]
    np.testing.assert_array_equal(a1, a2)


def test_bc_loss_is_finite(agent):
    obs = _tensors(_obs(8, seed=5))
    tokens = obs["users"].reshape(8, U, NUM_FEATURES)
    mask = obs["mask"] > 0
    loss = agent.actor.bc_loss(tokens, mask, torch.rand(8, U) * 2 - 1)
    assert torch.isfinite(loss)
    loss.backward()


def test_critic_learns_terminal_reward():
    model = ADD(max_users=U, seed=0, critic_lr=3e-3, **SMALL_NET)
    obs = _tensors(_obs(32, seed=6))
    nxt = _tensors(_obs(32, seed=7))
    r = 0.7
    batch = DictReplayBufferSamples(
        observations=obs,
        actions=torch.rand(32, U) * 2 - 1,
        next_observations=nxt,
        dones=torch.ones(32, 1),
        rewards=torch.full((32, 1), r),
    )
    tokens, mask = obs["users"].reshape(32, U, NUM_FEATURES), obs["mask"] > 0
    with torch.no_grad():
        before = model.critic(tokens, mask, batch.actions)[0]
    for _ in range(150):
        losses = model.train_on_batch(batch, update_actor=False)
    with torch.no_grad():
        q1, q2 = model.critic(tokens, mask, batch.actions)
    assert (q1 - r).abs().mean() < 0.05 and (q2 - r).abs().mean() < 0.05
    assert (q1 - r).abs().mean() < (before - r).abs().mean()
    assert losses["critic_loss"] < 0.01


def test_config_validation():
    with pytest.raises(TypeError, match="unknown ADD"):
        ADD(max_users=U, net_arch=[64])
    with pytest.raises(ValueError, match="deterministic_noise"):
        ADDConfig(deterministic_noise="mean")


def test_action_squash_validation():
    with pytest.raises(ValueError, match="action_squash must be one of clip, tanh, got 'sigmoid'"):
        ADDConfig(action_squash="sigmoid")


@pytest.mark.parametrize("squash", ["clip", "tanh"])
def test_saturated_actor_gradient(squash):
    """Regression (docs/rl-results.md): a clipped actor whose x_0 estimate left [-1, 1]
    (every user at +1, an equal split) gets zero policy gradient and stays stuck there;
    with ``action_squash="tanh"`` the gradient survives."""
    torch.manual_seed(0)
    model = ADD(max_users=U, seed=0, action_squash=squash, **SMALL_NET)
    net = model.actor.eps.net[-1]
    with torch.no_grad():  # eps = -5 everywhere: every step's x_0 estimate is far above 1
        net.weight.zero_()
        net.bias.fill_(-5.0)
    tok, m = split_obs(_tensors(_obs(4, active=5)), U)
    action = model.actor.sample(tok, m)
    (action * m).sum().backward()
    grad = net.bias.grad.abs().item()
    if squash == "clip":
        assert torch.all(action == 1.0) and grad == 0.0
    else:
        assert torch.all((action > 0.95) & (action < 1.0)) and grad > 0.0


@pytest.mark.parametrize("squash", ["clip", "tanh"])
def test_centred_actor_has_no_common_mode(squash):
    """``action_center``: the softmax env ignores a shift of every user's action, so the
    actor's output is centred over active users before the squash. The saturated actor
    of the test above then acts in the interior (equal share at a = 0), and a per-user
    change of the noise model still moves the action (non-zero gradient)."""
    torch.manual_seed(0)
    model = ADD(max_users=U, seed=0, action_squash=squash, action_center=True, **SMALL_NET)
    net = model.actor.eps.net[-1]
    with torch.no_grad():
        net.weight.zero_()
        net.bias.fill_(-5.0)
    tok, m = split_obs(_tensors(_obs(4, active=5)), U)
    zero = torch.zeros(model.config.diffusion_steps + 1, 4, U)
    action = model.actor.sample(tok, m, zero)  # same x for every user: centred to 0
    assert torch.allclose(action, torch.zeros_like(action), atol=1e-6)
    sampled = model.actor.sample(tok, m)  # random noise: centred over the active users
    pre = torch.atanh(sampled) if squash == "tanh" else sampled  # before the squash
    inside = ((pre.abs() < 1.0) | ~m).all(dim=1) if squash == "clip" else torch.ones(4) > 0
    mean = (pre * m).sum(1) / m.sum(1)
    assert inside.any()  # rows the clip did not touch are centred exactly
    assert torch.allclose(mean[inside], torch.zeros_like(mean[inside]), atol=1e-4)
    weights = torch.arange(U, dtype=torch.float32)  # a per-user objective
    (sampled * m * weights).sum().backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum().item() > 0.0
    assert ADD(max_users=U, seed=0, **SMALL_NET).config.action_center is False  # default off
