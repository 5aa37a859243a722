"""Permutation-invariant networks over the env's user rows, for Stable-Baselines3.

* :class:`UserSetExtractor` (an SB3 ``BaseFeaturesExtractor``): DeepSets with one round
  of context. Each user row ``x_i`` ``[F]`` (plus any other per-slot observation entry,
  e.g. the joint env's ``levels``) goes through ``phi`` (MLP, ReLU) to ``h_i`` ``[d]``;
  the cell summary is the masked mean ``g = mean_{i active} h_i`` (zero without active
  users); ``e_i = rho([h_i, g])`` ``[d]`` is zeroed on inactive slots. Output:
  ``[e_1 .. e_U, mean_i e_i, sum_i e_i / U]`` ``[U * d + 2 d]``: per-user parts that
  move with their user (permutation-equivariant) and a summary that does not change
  when users are permuted (permutation-invariant; the scaled sum keeps the number of
  active users).
* :class:`UserSetActorCriticPolicy` (PPO's default in ``aigcsim train``): the actor maps
  every ``e_i`` with one shared head to user ``i``'s action entries (its logit, and its
  level in the joint env), and the summary to the global entries (the idle logit), so
  the same rule serves every user and permuting users permutes the actions; the critic
  reads the summary only. Its last layers start near zero, so an untrained policy
  plays about ``a = 0``: an equal share. The log-probability and entropy of an action
  count only the entries of users active in the observation (and the global ones):
  the other slots do not act, so their sampled noise would only add variance to the
  policy gradient.

SAC and TD3 use :class:`UserSetExtractor` with their own MLP heads (``net_arch``).
Shapes: ``B`` batch, ``U`` user slots, ``F`` features per user, ``d = embed_dim``.
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import torch
from stable_baselines3.common.policies import MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B, U, d]``, ``[B, U]`` (0/1) -> ``[B, d]`` mean over masked rows (0 if none)."""
    m = mask.unsqueeze(-1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _slots(observation_space: gym.spaces.Dict) -> tuple[int, int, list[str]]:
    """``(U, F, extra keys)`` of an env observation space (``users``, ``mask``, extras
    of shape ``[U]`` each added as one more column per user)."""
    mask = observation_space["mask"]
    u = int(_shape(mask)[0])  # MultiBinary(U) or Box([U])
    users = int(_shape(observation_space["users"])[0])
    if users % u:
        raise ValueError(f"users observation of size {users} is not a multiple of {u} slots")
    extras = sorted(k for k in observation_space.spaces if k not in ("users", "mask"))
    for k in extras:
        if _shape(observation_space[k]) != (u,):
            raise ValueError(f"observation entry {k!r} must have shape ({u},)")
    return u, users // u, extras


def _shape(space: gym.Space[Any]) -> tuple[int, ...]:
    """The shape of ``space`` (``ValueError`` for a space without one)."""
    if space.shape is None:
        raise ValueError(f"observation space {space} has no shape")
    return tuple(space.shape)


class UserSetExtractor(BaseFeaturesExtractor):
    """DeepSets features over user rows; see the module docstring.

    Args:
        observation_space: the env's ``Dict(users, mask, ...)`` space.
        embed_dim: ``d``, width of the per-user embeddings.
        hidden_dim: width of the hidden layer of ``phi`` and ``rho``.
    """

    def __init__(
        self, observation_space: gym.spaces.Dict, embed_dim: int = 64, hidden_dim: int = 64
    ) -> None:
        u, f, extras = _slots(observation_space)
        super().__init__(observation_space, features_dim=u * embed_dim + 2 * embed_dim)
        self.num_users, self.num_features, self.extras = u, f, extras
        self.embed_dim = embed_dim
        self.phi = _mlp([f + len(extras), hidden_dim, embed_dim])
        self.rho = _mlp([2 * embed_dim, hidden_dim, embed_dim])

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        x = observations["users"].reshape(-1, self.num_users, self.num_features)
        if self.extras:
            cols = [observations[k].reshape(-1, self.num_users, 1) for k in self.extras]
            x = torch.cat([x, *cols], dim=-1)
        mask = observations["mask"].reshape(-1, self.num_users).float()
        h = self.phi(x)
        g = masked_mean(h, mask)
        e = self.rho(torch.cat([h, g.unsqueeze(1).expand_as(h)], dim=-1)) * mask.unsqueeze(-1)
        pooled = [masked_mean(e, mask), e.sum(dim=1) / self.num_users]
        return torch.cat([e.flatten(1), *pooled], dim=1)


class UserSetHeads(nn.Module):
    """SB3 ``mlp_extractor`` for :class:`UserSetActorCriticPolicy`.

    ``forward_actor``: ``[B, U * d + 2 d]`` -> ``[B, per_user * U + n_global]`` action means
    (user ``i``'s ``k``-th entry at ``k * U + i``, global entries last);
    ``forward_critic``: -> ``[B, hidden]`` value features from the summary.
    """

    def __init__(
        self, num_users: int, embed_dim: int, per_user: int, n_global: int, hidden_dim: int
    ) -> None:
        super().__init__()
        self.num_users, self.embed_dim = num_users, embed_dim
        self.per_user, self.n_global = per_user, n_global
        # layers are built in this order (the random initial weights depend on it)
        self.user_head = nn.Sequential(
            nn.Linear(3 * embed_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, per_user)
        )
        self.global_head: nn.Sequential | None = (
            nn.Sequential(
                nn.Linear(2 * embed_dim, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, n_global)
            )
            if n_global
            else None
        )
        for head in (self.user_head, self.global_head):
            if head is not None:  # start near a = 0 (equal share)
                out = cast(nn.Linear, head[-1])
                nn.init.orthogonal_(out.weight, gain=0.01)
                nn.init.zeros_(out.bias)
        self.value_net_body = nn.Sequential(
            nn.Linear(2 * embed_dim, hidden_dim),
            nn.Tanh(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.Tanh(),
        )
        self.latent_dim_pi = per_user * num_users + n_global
        self.latent_dim_vf = hidden_dim

    def _split(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, d = self.num_users, self.embed_dim
        return features[:, : u * d].reshape(-1, u, d), features[:, u * d :]

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        e, g = self._split(features)
        ctx = g.unsqueeze(1).expand(-1, self.num_users, -1)
        per = self.user_head(torch.cat([e, ctx], dim=-1))  # [B, U, k]
        out = per.transpose(1, 2).reshape(-1, self.per_user * self.num_users)
        if self.global_head is not None:
            out = torch.cat([out, self.global_head(g)], dim=1)
        return out

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.value_net_body(self._split(features)[1])

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class UserSetActorCriticPolicy(MultiInputActorCriticPolicy):
    """PPO/A2C policy: :class:`UserSetExtractor` + :class:`UserSetHeads`; the action mean
    is the heads' output itself (no extra linear layer), so it stays equivariant.

    Extra keyword arguments: ``embed_dim`` (64), ``hidden_dim`` (64), ``per_user``
    (action entries per user, default ``action size // U``); the action space must be
    ``Box([per_user * U + n_global])`` with ``n_global`` in ``{0, 1}``.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Dict,
        action_space: gym.spaces.Box,
        lr_schedule: Any,
        embed_dim: int = 64,
        hidden_dim: int = 64,
        per_user: int | None = None,
        **kwargs: Any,
    ) -> None:
        u, _f, _extras = _slots(observation_space)
        self._slots_u = u
        n_act = int(_shape(action_space)[0])
        self._per_user = n_act // u if per_user is None else int(per_user)
        self._n_global = n_act - self._per_user * u
        if self._n_global not in (0, 1):
            raise ValueError(f"action size {n_act} is not {self._per_user} x {u} slots (+ 1)")
        self._embed_dim, self._hidden_dim = embed_dim, hidden_dim
        kwargs.setdefault("features_extractor_class", UserSetExtractor)
        kwargs.setdefault(
            "features_extractor_kwargs", {"embed_dim": embed_dim, "hidden_dim": hidden_dim}
        )
        kwargs.setdefault("ortho_init", False)
        if not kwargs.get("share_features_extractor", True):
            raise ValueError("UserSetActorCriticPolicy shares its features extractor")
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        heads = UserSetHeads(
            self._slots_u, self._embed_dim, self._per_user, self._n_global, self._hidden_dim
        )
        self.mlp_extractor = heads  # type: ignore[assignment]  # SB3 types it as MlpExtractor

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the heads already give one mean per action entry
        optimizer_class: Any = self.optimizer_class  # a torch.optim class taking lr=
        self.optimizer = optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _action_mask(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[B, A]``: 1 for the entries of active users and the global entries."""
        m = obs["mask"].float().reshape(-1, self._slots_u)
        cols = [m] * self._per_user + [torch.ones_like(m[:, :1])] * self._n_global
        return torch.cat(cols, dim=1)

    @staticmethod
    def _torch_distribution(dist: Any) -> torch.distributions.Distribution:
        """The torch distribution inside SB3's ``dist`` (a diagonal Gaussian for a Box)."""
        inner = dist.distribution
        if not isinstance(inner, torch.distributions.Distribution):
            raise TypeError(f"expected one torch distribution, got {type(inner).__name__}")
        return inner

    def forward(  # type: ignore[override]  # SB3 types obs as Tensor; ours is a Dict
        self, obs: dict[str, torch.Tensor], deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        values = self.value_net(latent_vf)
        dist = self._get_action_dist_from_latent(latent_pi)
        actions = dist.get_actions(deterministic=deterministic)
        inner = self._torch_distribution(dist)
        log_prob = (inner.log_prob(actions) * self._action_mask(obs)).sum(dim=1)
        shape = _shape(self.action_space)
        return actions.reshape((-1, *shape)), values, log_prob

    def evaluate_actions(  # type: ignore[override]  # obs is always a Dict here
        self, obs: dict[str, torch.Tensor], actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        inner = self._torch_distribution(self._get_action_dist_from_latent(latent_pi))
        mask = self._action_mask(obs)
        log_prob = (inner.log_prob(actions) * mask).sum(dim=1)
        entropy = (inner.entropy() * mask).sum(dim=1)
        return self.value_net(latent_vf), log_prob, entropy
