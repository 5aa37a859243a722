"""Attention-aware Deep Diffusion (ADD): a diffusion-policy actor-critic for bandwidth allocation.

ADD (the seed paper's DRL solver) is trained here D2SAC-style (off-policy, twin critics)
on :class:`aigcsim.agents.envs.allocation_env.BandwidthAllocationEnv`. Torch modules live in
:mod:`aigcsim.agents.add_networks`.

Architecture
------------
* **State encoder** (one for the actor, one shared by the twin critics): the
  ``[max_users, F]`` user table (``F`` = 14 columns,
  :data:`aigcsim.agents.envs.spaces.FEATURES`) -> ``Linear(F, d)`` -> ``n_layers``
  pre-norm multi-head self-attention blocks over the user slots (only active users are
  keys; an observation without active users attends over all slots, so no NaNs) ->
  LayerNorm. Gives a
  per-user context ``[U, d]`` (permutation-equivariant, no positional encodings) and a
  cell context (masked mean over active users, zero if none).
* **Actor** (diffusion policy): ``x_T ~ N(0, I)`` in ``R^U``; for ``t = T..1`` a noise
  model ``eps(x_t, t, s)`` is applied per user to ``[x_t[i], masked mean of x_t,
  time embedding, context_i, cell]`` (MLP with Mish; time embedding: 16-d sinusoidal ->
  Linear -> Mish -> Linear); ``x_0`` estimates are clipped to ``[-1, 1]`` and
  ``x_{t-1}`` is drawn from the DDPM posterior; the final action is clipped to
  ``[-1, 1]``. Beta schedule: discretised VP SDE with linear ``beta(t)`` from
  ``beta_min=0.1`` to ``beta_max=10``.
* **Deterministic actions** (``predict(deterministic=True)``):
  ``deterministic_noise="zero"`` (default) runs the mean chain, ``x_T = 0`` and no noise
  at any step; ``"seed"`` draws all noise from a generator re-seeded with
  ``deterministic_seed`` on every call (same observation -> same action).
* **Critics**: ``Q_j(s, a) = rho_j([masked mean_i phi_j([context_i, a_i]), cell,
  n_active / U])`` for ``j = 1, 2`` (DeepSets: permutation-invariant, inactive slots'
  actions ignored), with Polyak-averaged target copies of critics and actor.

Training (one gradient step)
----------------------------
* critic: ``y = r + gamma (1 - done) min_j Q'_j(s', a')`` with ``a'`` sampled
  (stochastically) by the *target* actor; loss ``MSE(Q_1, y) + MSE(Q_2, y)``
  (timeouts are not terminal: SB3 ``DictReplayBuffer`` with timeout handling).
* actor (every ``policy_delay`` steps): ``-min_j Q_j(s, a)`` with ``a`` sampled by the
  reverse chain, gradients flowing through all ``T`` denoising steps (reparameterised
  Gaussian noise), plus ``bc_coef`` times the denoising loss of replayed actions
  (default ``bc_coef = 0``: pure Q-maximisation as in D2SAC, without its entropy term).
* exploration: the reverse chain's sampling noise, plus optional Gaussian
  ``exploration_noise`` (default 0); uniform random actions before ``learning_starts``.
* Polyak update of all targets with ``tau`` after every gradient step; gradients
  clipped to ``max_grad_norm``.

Hyperparameters (:class:`ADDConfig`; defaults follow the authors' GDMOPT code)
----------------------------------------------------------------------------
======================  ==========  ==================================================
``diffusion_steps``     6           denoising steps ``T``
``beta_min/beta_max``   0.1 / 10    VP schedule
``d_model``             64          attention width; ``n_heads=4``, ``n_layers=1``
``hidden``              (256, 256)  MLP widths of the noise model and critics (Mish)
``t_dim``               16          sinusoidal time embedding
``actor_lr/critic_lr``  1e-4        Adam
``batch_size``          512
``tau``                 0.005       Polyak coefficient
``gamma``               0.99
``buffer_size``         100_000     SB3 ``DictReplayBuffer``
``learning_starts``     1000        random actions before this many steps
``train_freq``          1           env steps between updates; ``gradient_steps=1``
``policy_delay``        1           critic updates per actor update
``bc_coef``             0.0         weight of the denoising loss on replayed actions
``exploration_noise``   0.0         std of extra Gaussian action noise
``action_squash``       "clip"      final action: ``clip`` to [-1, 1] or ``tanh`` of the
                                    last x_0 estimate (keeps a gradient at the bounds;
                                    see docs/rl-results.md)
``action_center``       False       subtract the active users' mean from the last x_0
                                    estimate before the squash (softmax actions have
                                    a common mode the reward ignores; see
                                    :class:`~aigcsim.agents.add_networks.DiffusionActor`)
``max_grad_norm``       10.0        ``None``: no clipping
======================  ==========  ==================================================

With the defaults one update is costly on a CPU (batch 512 x ``U`` users x 6 steps of a
256-wide MLP, with gradients through the chain); use smaller ``batch_size`` / ``hidden``
for quick runs.

API (SB3-like, so ``sb3_training`` callbacks and the ``policy`` allocator work):
``ADD(env, config=None, seed=None, **config_overrides)``, ``learn(total_timesteps,
callback=None, log_interval=4, tb_log_name="add", reset_num_timesteps=True,
progress_bar=False)``, ``predict(obs, state=None, episode_start=None,
deterministic=True) -> (action, None)``, ``save(path)``, ``ADD.load(path, env=None)``.
Saved files are zip archives (``config.json`` + ``state.pt``), not SB3 zips.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import time
import zipfile
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aigcsim.agents.add_networks import SQUASHES, DiffusionActor, TwinCritic

__all__ = ["ADD", "ADDConfig", "add_default_hyperparams"]

SAVE_FORMAT = 1


@dataclass
class ADDConfig:
    """ADD hyperparameters; see the module docstring's table."""

    diffusion_steps: int = 6
    beta_min: float = 0.1
    beta_max: float = 10.0
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 1
    hidden: tuple[int, ...] = (256, 256)
    t_dim: int = 16
    actor_lr: float = 1e-4
    critic_lr: float = 1e-4
    batch_size: int = 512
    tau: float = 0.005
    gamma: float = 0.99
    buffer_size: int = 100_000
    learning_starts: int = 1000
    train_freq: int = 1
    gradient_steps: int = 1
    policy_delay: int = 1
    bc_coef: float = 0.0
    exploration_noise: float = 0.0
    action_squash: str = "clip"
    action_center: bool = False
    max_grad_norm: float | None = 10.0
    deterministic_noise: str = "zero"
    deterministic_seed: int = 0

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.deterministic_noise not in ("zero", "seed"):
            raise ValueError(
                f"deterministic_noise must be 'zero' or 'seed', got {self.deterministic_noise!r}"
            )
        if self.action_squash not in SQUASHES:
            raise ValueError(
                f"action_squash must be one of {', '.join(SQUASHES)}, got {self.action_squash!r}"
            )
        if self.diffusion_steps < 1:
            raise ValueError(f"diffusion_steps must be >= 1, got {self.diffusion_steps}")


def add_default_hyperparams(timesteps: int) -> dict[str, Any]:
    """ADD defaults for a run of ``timesteps`` steps (buffer and warm-up scaled like SB3's)."""
    return {
        "buffer_size": max(1, min(100_000, timesteps)),
        "learning_starts": min(1000, timesteps // 4),
    }


def split_obs(obs: dict[str, torch.Tensor], max_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched observation tensors -> ``tokens [B, U, F]`` float, ``mask [B, U]`` bool."""
    users = obs["users"].float()
    users = users.reshape(users.shape[0], max_users, -1)
    return users, obs["mask"].float().reshape(users.shape[0], max_users) > 0.5


class ADD:
    """Attention-aware Deep Diffusion agent; see the module docstring."""

    def __init__(
        self,
        env: Any = None,
        config: ADDConfig | None = None,
        *,
        seed: int | None = None,
        device: str = "cpu",
        verbose: int = 0,
        tensorboard_log: str | None = None,
        max_users: int | None = None,
        n_features: int | None = None,
        **overrides: Any,
    ) -> None:
        from aigcsim.agents.envs.spaces import NUM_FEATURES, action_space, observation_space

        cfg = config or ADDConfig()
        if overrides:
            known = {f.name for f in fields(ADDConfig)}
            bad = sorted(set(overrides) - known)
            if bad:
                raise TypeError(f"unknown ADD hyperparameters: {', '.join(bad)}")
            cfg = ADDConfig(**(asdict(cfg) | overrides))
        self.config = cfg
        self.device = torch.device(device)
        self.verbose = verbose
        self.tensorboard_log = tensorboard_log
        self.seed = seed
        self.env = None
        if env is not None:
            self.env = self._wrap_env(env)
            self.observation_space = self.env.observation_space
            self.action_space = self.env.action_space
            self.max_users = int(self.action_space.shape[0])
            self.n_features = int(self.observation_space.spaces["users"].shape[0]) // self.max_users
        else:
            if max_users is None:
                raise ValueError("ADD needs an env or max_users")
            self.max_users = int(max_users)
            self.n_features = int(n_features or NUM_FEATURES)
            self.observation_space = observation_space(self.max_users)
            self.action_space = action_space(self.max_users)
        if seed is not None:
            self.set_random_seed(seed)
        arch = {"d_model": cfg.d_model, "n_heads": cfg.n_heads, "n_layers": cfg.n_layers}
        self.actor = DiffusionActor(
            self.n_features,
            **arch,
            hidden=cfg.hidden,
            t_dim=cfg.t_dim,
            steps=cfg.diffusion_steps,
            beta_min=cfg.beta_min,
            beta_max=cfg.beta_max,
            squash=cfg.action_squash,
            center=cfg.action_center,
        ).to(self.device)
        self.critic = TwinCritic(self.n_features, **arch, hidden=cfg.hidden).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.num_timesteps = 0
        self.n_updates = 0
        self.replay_buffer: Any = None
        self.last_losses: dict[str, float] = {}
        self._logger: Any = None
        self._custom_logger = False
        self._last_obs: dict[str, np.ndarray] | None = None
        self._episodes = 0
        self._ep_info: deque[dict[str, float]] = deque(maxlen=100)

    # ----------------------------------------------------------------- SB3-like plumbing
    @staticmethod
    def _wrap_env(env: Any) -> Any:
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

        if isinstance(env, VecEnv):
            return env
        if not isinstance(env, Monitor):
            env = Monitor(env)
        return DummyVecEnv([lambda: env])

    def get_env(self) -> Any:
        return self.env

    def set_env(self, env: Any) -> None:
        self.env = self._wrap_env(env)
        self._last_obs = None

    def get_vec_normalize_env(self) -> None:
        return None

    @property
    def logger(self) -> Any:
        if self._logger is None:
            from stable_baselines3.common.logger import configure

            self._logger = configure(None, [])
        return self._logger

    def set_logger(self, logger: Any) -> None:
        """Use ``logger`` (SB3 ``Logger``) from now on; ``learn`` keeps it (as in SB3)."""
        self._logger = logger
        self._custom_logger = True

    def dump_logs(self) -> None:
        self.logger.dump(self.num_timesteps)

    def set_random_seed(self, seed: int | None = None) -> None:
        """Seed python, numpy and torch (as SB3 does) and the action space."""
        if seed is None:
            return
        from stable_baselines3.common.utils import set_random_seed

        set_random_seed(seed)
        self.action_space.seed(seed)

    # ----------------------------------------------------------------------- acting
    def _noise(self, batch: int, deterministic: bool) -> torch.Tensor | None:
        shape = (self.config.diffusion_steps + 1, batch, self.max_users)
        if not deterministic:
            return None
        if self.config.deterministic_noise == "zero":
            return torch.zeros(shape, device=self.device)
        gen = torch.Generator().manual_seed(self.config.deterministic_seed)
        return torch.randn(shape, generator=gen).to(self.device)

    def _obs_tensors(self, obs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, bool]:
        users = np.asarray(obs["users"], dtype=np.float32)
        single = users.ndim == 1
        users = users.reshape(-1, self.max_users * self.n_features)
        mask = np.asarray(obs["mask"], dtype=np.float32).reshape(-1, self.max_users)
        t = {"users": torch.as_tensor(users, device=self.device), "mask": torch.as_tensor(mask)}
        tokens, m = split_obs(t, self.max_users)
        return tokens, m.to(self.device), single

    @torch.no_grad()
    def predict(
        self,
        observation: dict[str, Any],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Actions for one observation (``[U]``) or a batch (``[B, U]``), float32 in [-1, 1]."""
        tokens, mask, single = self._obs_tensors(observation)
        self.actor.eval()
        act = self.actor.sample(tokens, mask, self._noise(tokens.shape[0], deterministic))
        out = act.cpu().numpy().astype(np.float32)
        return (out[0] if single else out), None

    def _explore(self, obs: dict[str, np.ndarray], n_envs: int) -> np.ndarray:
        if self.num_timesteps < self.config.learning_starts:
            return np.stack([self.action_space.sample() for _ in range(n_envs)]).astype(np.float32)
        action, _ = self.predict(obs, deterministic=False)
        action = action.reshape(n_envs, self.max_users)
        if self.config.exploration_noise > 0:
            noise = torch.randn(action.shape).numpy() * self.config.exploration_noise
            action = action + noise
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    # --------------------------------------------------------------------- training
    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor, params: Any) -> None:
        opt.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        opt.step()

    def train_on_batch(self, batch: Any, update_actor: bool = True) -> dict[str, float]:
        """One critic step (and actor step) on SB3 ``DictReplayBufferSamples``; returns losses."""
        from stable_baselines3.common.utils import polyak_update

        cfg = self.config
        self.actor.train()
        tokens, mask = split_obs(batch.observations, self.max_users)
        next_tokens, next_mask = split_obs(batch.next_observations, self.max_users)
        actions = batch.actions.float()
        rewards = batch.rewards.float().reshape(-1)
        dones = batch.dones.float().reshape(-1)
        with torch.no_grad():
            next_a = self.actor_target.sample(next_tokens, next_mask)
            q1_t, q2_t = self.critic_target(next_tokens, next_mask, next_a)
            target = rewards + cfg.gamma * (1.0 - dones) * torch.min(q1_t, q2_t)
        q1, q2 = self.critic(tokens, mask, actions)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self._step(self.critic_opt, critic_loss, self.critic.parameters())
        out = {"critic_loss": critic_loss.item(), "q_mean": q1.mean().item()}
        if update_actor and self.n_updates % cfg.policy_delay == 0:
            self.critic.requires_grad_(False)
            a = self.actor.sample(tokens, mask)
            actor_loss = -torch.min(*self.critic(tokens, mask, a)).mean()
            self.critic.requires_grad_(True)
            out["actor_loss"] = actor_loss.item()
            if cfg.bc_coef > 0:
                bc = self.actor.bc_loss(tokens, mask, actions)
                actor_loss = actor_loss + cfg.bc_coef * bc
                out["bc_loss"] = bc.item()
            self._step(self.actor_opt, actor_loss, self.actor.parameters())
            polyak_update(self.actor.parameters(), self.actor_target.parameters(), cfg.tau)
        polyak_update(self.critic.parameters(), self.critic_target.parameters(), cfg.tau)
        self.n_updates += 1
        self.last_losses = out
        return out

    def _make_buffer(self) -> Any:
        from stable_baselines3.common.buffers import DictReplayBuffer

        if self.env is None:
            raise ValueError("ADD needs an env to make its replay buffer")
        return DictReplayBuffer(
            max(1, self.config.buffer_size),
            self.observation_space,
            self.action_space,
            device=self.device,
            n_envs=self.env.num_envs,
            handle_timeout_termination=True,
        )

    def _init_callback(self, callback: Any, progress_bar: bool) -> Any:
        from stable_baselines3.common.callbacks import (
            BaseCallback,
            CallbackList,
            ConvertCallback,
            ProgressBarCallback,
        )

        if isinstance(callback, list):
            callback = CallbackList(callback)
        elif callback is None:
            callback = CallbackList([])
        elif not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, ProgressBarCallback()])
        callback.init_callback(self)
        return callback

    def _log(self, start: float, start_steps: int) -> None:
        lg = self.logger
        if self._ep_info:
            lg.record("rollout/ep_rew_mean", float(np.mean([e["r"] for e in self._ep_info])))
            lg.record("rollout/ep_len_mean", float(np.mean([e["l"] for e in self._ep_info])))
        elapsed = max(time.time() - start, 1e-9)
        lg.record("time/episodes", self._episodes, exclude="tensorboard")
        lg.record("time/fps", int((self.num_timesteps - start_steps) / elapsed))
        lg.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        for k, v in self.last_losses.items():
            lg.record(f"train/{k}", v)
        lg.record("train/n_updates", self.n_updates, exclude="tensorboard")
        lg.dump(self.num_timesteps)

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 4,
        tb_log_name: str = "add",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> ADD:
        """Train for ``total_timesteps`` env steps (SB3 ``learn`` semantics)."""
        from stable_baselines3.common.utils import configure_logger

        if self.env is None:
            raise ValueError("ADD.learn needs an env (pass one to ADD(...) or set_env)")
        cfg = self.config
        env = self.env
        if reset_num_timesteps or self.replay_buffer is None:
            self.num_timesteps = 0 if reset_num_timesteps else self.num_timesteps
            self._last_obs = None
        if self.replay_buffer is None:
            self.replay_buffer = self._make_buffer()
        if not self._custom_logger:
            self._logger = configure_logger(
                self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps
            )
        total_timesteps = total_timesteps + (0 if reset_num_timesteps else self.num_timesteps)
        callback = self._init_callback(callback, progress_bar)
        if self._last_obs is None:
            if self.seed is not None:
                env.seed(self.seed)
            self._last_obs = env.reset()
        start, start_steps = time.time(), self.num_timesteps
        callback.on_training_start(locals(), globals())
        n_envs = env.num_envs
        steps = 0
        while self.num_timesteps < total_timesteps:
            callback.on_rollout_start()
            obs = self._last_obs
            actions = self._explore(obs, n_envs)
            new_obs, rewards, dones, infos = env.step(actions)
            self.num_timesteps += n_envs
            steps += 1
            callback.update_locals(locals())
            if not callback.on_step():
                break
            next_obs = {k: np.array(v, copy=True) for k, v in new_obs.items()}
            for i, done in enumerate(dones):
                term = infos[i].get("terminal_observation")
                if done and term is not None:
                    for k in next_obs:
                        next_obs[k][i] = term[k]
            self.replay_buffer.add(obs, next_obs, actions, rewards, dones, infos)
            self._last_obs = new_obs
            new_episodes = 0
            for i, done in enumerate(dones):
                if done:
                    new_episodes += 1
                    if "episode" in infos[i]:
                        self._ep_info.append(infos[i]["episode"])
            callback.on_rollout_end()
            if (
                self.num_timesteps > cfg.learning_starts
                and self.replay_buffer.size() > 0
                and steps % max(1, cfg.train_freq) == 0
            ):
                for _ in range(cfg.gradient_steps):
                    self.train_on_batch(self.replay_buffer.sample(cfg.batch_size))
            for _ in range(new_episodes):
                self._episodes += 1
                if log_interval and self._episodes % log_interval == 0:
                    self._log(start, start_steps)
        self._log(start, start_steps)
        callback.on_training_end()
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write a zip (``.zip`` added when ``path`` has no suffix) with config and weights."""
        path = Path(path)
        if path.suffix == "":
            path = path.with_suffix(".zip")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": SAVE_FORMAT,
            "agent": "add",
            "config": asdict(self.config),
            "max_users": self.max_users,
            "n_features": self.n_features,
            "num_timesteps": self.num_timesteps,
            "n_updates": self.n_updates,
        }
        state = {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
        }
        buf = io.BytesIO()
        torch.save(state, buf)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("config.json", json.dumps(meta, indent=2))
            zf.writestr("state.pt", buf.getvalue())

    @classmethod
    def load(cls, path: str | Path, env: Any = None, device: str = "cpu", **kwargs: Any) -> ADD:
        """Rebuild an agent saved by :meth:`save` (``env`` optional; needed for ``learn``).

        ``state.pt`` is read with ``torch.load(weights_only=True)``: tensors and plain
        containers only, so a crafted file cannot run code (it raises ``ValueError``)."""
        path = Path(path)
        if not path.exists() and path.suffix == "":
            path = path.with_suffix(".zip")
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("config.json"))
            try:  # tensors and plain containers only: never runs code from the file
                state = torch.load(
                    io.BytesIO(zf.read("state.pt")), map_location=device, weights_only=True
                )
            except pickle.UnpicklingError as exc:
                raise ValueError(
                    f"'{path}': state.pt holds more than weights; refused (weights_only "
                    f"loading, nothing in it was run): {str(exc).splitlines()[0][:160]}"
                ) from None
        if meta.get("agent") != "add":
            raise ValueError(f"'{path}' is not an ADD model")
        model = cls(
            env,
            ADDConfig(**meta["config"]),
            device=device,
            max_users=meta["max_users"],
            n_features=meta["n_features"],
            **kwargs,
        )
        if model.max_users != meta["max_users"]:
            raise ValueError(f"env has {model.max_users} user slots, the model {meta['max_users']}")
        for name in ("actor", "critic", "actor_target", "critic_target"):
            getattr(model, name).load_state_dict(state[name])
        model.actor_opt.load_state_dict(state["actor_opt"])
        model.critic_opt.load_state_dict(state["critic_opt"])
        model.num_timesteps = int(meta.get("num_timesteps", 0))
        model.n_updates = int(meta.get("n_updates", 0))
        return model
