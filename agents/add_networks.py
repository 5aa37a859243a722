"""Torch modules of the Attention-aware Deep Diffusion (ADD) agent (see :mod:`aigcsim.agents.add`).

Every module works on user tokens ``[B, U, F]`` with a boolean ``mask [B, U]`` (True:
active user) and is permutation-equivariant over the ``U`` user slots (no positional
encodings; pooling is a masked mean), so a policy trained with ``max_users`` slots
handles any number of active users.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQUASHES: tuple[str, ...] = ("clip", "tanh")
"""How :class:`DiffusionActor` bounds its final action to ``[-1, 1]``."""

__all__ = [
    "SQUASHES",
    "AttentionEncoder",
    "DiffusionActor",
    "NoiseNet",
    "SinusoidalTimeEmbedding",
    "TwinCritic",
    "masked_mean",
    "vp_beta_schedule",
]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x [B, U, D]`` over active slots of ``mask [B, U]``; zeros if none active."""
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def mlp(sizes: list[int], act: type[nn.Module] = nn.Mish) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class _SelfAttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention + feed-forward block with a key padding mask."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = mlp([d_model, 2 * d_model, d_model], nn.GELU)

    def forward(self, h: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``h [B, U, D]``; ``keys [B, U]`` bool, True where a slot may be attended to."""
        b, u, d = h.shape
        q, k, v = self.qkv(self.norm1(h)).chunk(3, dim=-1)

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, u, self.n_heads, d // self.n_heads).transpose(1, 2)

        attn_mask = keys[:, None, None, :]  # [B, 1, 1, U] broadcast over heads and queries
        y = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=attn_mask)
        h = h + self.out(y.transpose(1, 2).reshape(b, u, d))
        return h + self.ff(self.norm2(h))


class AttentionEncoder(nn.Module):
    """User tokens -> per-user context ``[B, U, d]`` and cell context ``[B, d]``.

    Linear embedding, ``n_layers`` self-attention blocks over the user slots where only
    active users are keys (inactive slots still get a context, which callers ignore),
    a final LayerNorm, and the masked mean of the active users' contexts as the cell
    context. An observation without active users attends over all slots (no NaNs) and
    has a zero cell context.
    """

    def __init__(self, n_features: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 1):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Linear(n_features, d_model)
        self.blocks = nn.ModuleList(_SelfAttentionBlock(d_model, n_heads) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = mask | ~mask.any(dim=1, keepdim=True)  # all-inactive rows: attend to every slot
        h = self.embed(tokens)
        for block in self.blocks:
            h = block(h, keys)
        h = self.norm(h)
        return h, masked_mean(h, mask)


class SinusoidalTimeEmbedding(nn.Module):
    """Sinusoidal embedding of the integer diffusion step ``t [B]`` -> ``[B, dim]``."""

    freqs: torch.Tensor  # [dim // 2] buffer

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        arg = t.to(self.freqs.dtype)[:, None] * self.freqs[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=-1)


def vp_beta_schedule(steps: int, beta_min: float = 0.1, beta_max: float = 10.0) -> torch.Tensor:
    """Betas ``[steps]`` of the discretised variance-preserving SDE with linear ``beta(t)``.

    ``alpha_t = exp(-beta_min / T - (beta_max - beta_min) * (2t - 1) / (2 T^2))``,
    ``beta_t = 1 - alpha_t`` for ``t = 1..T`` (Song et al., 2021, VP SDE).
    """
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    log_alpha = -beta_min / steps - 0.5 * (beta_max - beta_min) * (2 * t - 1) / steps**2
    return (1.0 - torch.exp(log_alpha)).clamp(max=0.999)


class NoiseNet(nn.Module):
    """``eps_theta(x_t, t, s)`` applied per user slot.

    Input of slot ``i``: ``[x_t[i], masked mean of x_t, time embedding, user context i,
    cell context]`` -> MLP with Mish -> one noise value. Shared weights over slots make it
    permutation-equivariant; the pooled ``x_t`` lets users' actions depend on each other.
    """

    def __init__(self, d_context: int, hidden: tuple[int, ...] = (256, 256), t_dim: int = 16):
        super().__init__()
        self.time = nn.Sequential(
            SinusoidalTimeEmbedding(t_dim),
            nn.Linear(t_dim, 2 * t_dim),
            nn.Mish(),
            nn.Linear(2 * t_dim, t_dim),
        )
        self.net = mlp([2 + t_dim + 2 * d_context, *hidden, 1])

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        ctx: torch.Tensor,
        cell: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """``x [B, U]``, ``t [B]`` (long), ``ctx [B, U, d]``, ``cell [B, d]`` -> ``[B, U]``."""
        b, u = x.shape
        pooled = masked_mean(x.unsqueeze(-1), mask)  # [B, 1]
        temb = self.time(t)
        inp = torch.cat(
            [
                x.unsqueeze(-1),
                pooled[:, None, :].expand(b, u, 1),
                temb[:, None, :].expand(b, u, temb.shape[-1]),
                ctx,
                cell[:, None, :].expand(b, u, cell.shape[-1]),
            ],
            dim=-1,
        )
        return self.net(inp).squeeze(-1)


class DiffusionActor(nn.Module):
    """DDPM policy over the action vector ``[U]``: reverse chain from ``x_T ~ N(0, I)``.

    Each reverse step predicts the noise, reconstructs ``x_0`` (clipped to ``[-1, 1]``)
    and samples ``x_{t-1}`` from the Gaussian posterior ``q(x_{t-1} | x_t, x_0)``; the
    returned action ``x_0`` is clipped to ``[-1, 1]`` (``squash="clip"``, the DDPM
    convention), or with ``squash="tanh"`` the last step's unclipped ``x_0`` estimate is
    squashed by ``tanh``: a clipped action has zero gradient once the estimate leaves
    ``[-1, 1]``, so a Q-maximising actor that drifts there (e.g. every user at ``+1``,
    an equal split) can never come back; ``tanh`` keeps a gradient. ``noise``
    (``[T + 1, B, U]``: the initial ``x_T`` then one draw per step; the last step adds
    none) makes sampling
    reproducible; ``noise=0`` gives the deterministic mean chain.

    ``center=True`` subtracts the mean over active users from the last ``x_0`` estimate
    before it is squashed. The env's shares are a softmax of the actions, so adding the
    same value to every user's action changes nothing: that common mode gets no signal
    from the reward, and when it drifts until every user sits at the clip bound the
    action is exactly equal share with zero gradient (seen after 250 updates on
    rl-headroom: every action -1). Centring removes the common mode before the bound.
    """

    # [T] float32 buffers of the schedule (set in __init__)
    betas: torch.Tensor
    abar: torch.Tensor
    sqrt_abar: torch.Tensor
    sqrt_1m_abar: torch.Tensor
    sqrt_recip_abar: torch.Tensor
    sqrt_recipm1_abar: torch.Tensor
    post_coef_x0: torch.Tensor
    post_coef_xt: torch.Tensor
    post_std: torch.Tensor

    def __init__(
        self,
        n_features: int,
        *,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 1,
        hidden: tuple[int, ...] = (256, 256),
        t_dim: int = 16,
        steps: int = 6,
        beta_min: float = 0.1,
        beta_max: float = 10.0,
        squash: str = "clip",
        center: bool = False,
    ) -> None:
        super().__init__()
        self.center = center
        if squash not in SQUASHES:
            raise ValueError(f"squash must be one of {', '.join(SQUASHES)}, got {squash!r}")
        self.steps = steps
        self.squash = squash
        self.encoder = AttentionEncoder(n_features, d_model, n_heads, n_layers)
        self.eps = NoiseNet(d_model, hidden, t_dim)
        betas = vp_beta_schedule(steps, beta_min, beta_max)
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
        post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
        buffers = {
            "betas": betas,
            "abar": abar,
            "sqrt_abar": abar.sqrt(),
            "sqrt_1m_abar": (1.0 - abar).sqrt(),
            "sqrt_recip_abar": (1.0 / abar).sqrt(),
            "sqrt_recipm1_abar": (1.0 / abar - 1.0).sqrt(),
            "post_coef_x0": betas * abar_prev.sqrt() / (1.0 - abar),
            "post_coef_xt": (1.0 - abar_prev) * alphas.sqrt() / (1.0 - abar),
            "post_std": post_var.clamp(min=1e-20).sqrt(),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.float(), persistent=False)

    def sample(
        self, tokens: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Actions ``[B, U]`` in ``[-1, 1]`` by the full reverse chain (differentiable)."""
        b, u = mask.shape
        ctx, cell = self.encoder(tokens, mask)
        if noise is None:
            noise = torch.randn(self.steps + 1, b, u, device=tokens.device)
        x = noise[0]
        for k in reversed(range(self.steps)):  # k = t - 1
            t = torch.full((b,), k, dtype=torch.long, device=tokens.device)
            eps = self.eps(x, t, ctx, cell, mask)
            x0 = self.sqrt_recip_abar[k] * x - self.sqrt_recipm1_abar[k] * eps
            if k == 0 and self.center:  # the action: x_0 minus its mean over active users
                x0 = x0 - masked_mean(x0.unsqueeze(-1), mask)
            if k == 0 and self.squash == "tanh":
                return torch.tanh(x0)  # the last step's x_0 is the action (post_coef_xt = 0)
            x0 = x0.clamp(-1.0, 1.0)
            x = self.post_coef_x0[k] * x0 + self.post_coef_xt[k] * x
            if k > 0:
                x = x + self.post_std[k] * noise[self.steps - k]
        return x.clamp(-1.0, 1.0)

    def bc_loss(
        self, tokens: torch.Tensor, mask: torch.Tensor, actions: torch.Tensor
    ) -> torch.Tensor:
        """Denoising (behaviour-cloning) loss of ``actions`` over active slots."""
        b, u = mask.shape
        ctx, cell = self.encoder(tokens, mask)
        k = torch.randint(0, self.steps, (b,), device=tokens.device)
        eps = torch.randn_like(actions)
        x = self.sqrt_abar[k, None] * actions + self.sqrt_1m_abar[k, None] * eps
        err = (self.eps(x, k, ctx, cell, mask) - eps).pow(2)
        m = mask.to(err.dtype)
        return (err * m).sum() / m.sum().clamp(min=1.0)


class TwinCritic(nn.Module):
    """Two Q heads over a shared attention encoder (DeepSets over users).

    ``Q_j(s, a) = rho_j([masked mean_i phi_j([ctx_i, a_i]), cell, n_active / U])``:
    invariant to permutations of the user slots; inactive slots' actions are ignored.
    """

    def __init__(
        self,
        n_features: int,
        *,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 1,
        hidden: tuple[int, ...] = (256, 256),
    ) -> None:
        super().__init__()
        self.encoder = AttentionEncoder(n_features, d_model, n_heads, n_layers)
        h = hidden[-1]
        self.phi = nn.ModuleList(mlp([d_model + 1, *hidden]) for _ in range(2))
        self.rho = nn.ModuleList(mlp([h + d_model + 1, h, 1]) for _ in range(2))

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``Q1, Q2`` of shape ``[B]``."""
        ctx, cell = self.encoder(tokens, mask)
        inp = torch.cat([ctx, actions.unsqueeze(-1)], dim=-1)
        frac = mask.to(ctx.dtype).mean(dim=1, keepdim=True)
        qs = []
        for phi, rho in zip(self.phi, self.rho, strict=True):
            pooled = masked_mean(F.mish(phi(inp)), mask)
            qs.append(rho(torch.cat([pooled, cell, frac], dim=-1)).squeeze(-1))
        return qs[0], qs[1]
