"""TISC on the diffusers backend: noise-robust textual inversion and generation from the
received noisy embedding (../shared/seeds/beyond-prompts-textual-inversion-semcom.txt).

* **Token choice**: the caption word with the highest attention score, from the Stable
  Diffusion text encoder's own self-attention (``backend.word_attention``; the
  attention each word receives from the others, :func:`~aigcsim.models.encoders.tisc.
  attention_pick`).
* **Placeholder**: the chosen word is replaced by :data:`PLACEHOLDER_WORD` (one BPE
  token); a forward hook on the text encoder's token-embedding layer replaces that
  token's input embedding by the learned vector (:class:`inject_placeholder`). No token
  is added to the tokenizer and no weight changes.
* **Noise-robust textual inversion** (:func:`textual_inversion`): only the vector ``v``
  is optimised (Adam), initialised at the chosen word's token embedding, with the
  diffusion loss ``||eps - eps_theta(x_t, t, c(v + delta))||^2`` (the target is the
  velocity for ``v_prediction`` models) on the image's VAE latents (distribution
  mean), ``t`` uniform over the training timesteps, and ``delta ~ N(0, sigma^2 I)``
  with ``sigma^2 = ||v||^2 / (D * SNR_train)``: AWGN at ``SNR_train`` on the normalised
  embedding ``v_hat = v sqrt(D) / ||v||`` (unit power per real component). No noise for
  ``clean``. A fixed set of (t, eps) draws from ``seed + 1`` gives the noise-free
  evaluation loss before and after training.
* **Channel and generation** (:func:`measure_tisc`): at each SNR ``s`` of the grid the
  receiver gets ``y = v_hat + n``, ``n ~ N(0, 1/s)`` per real component (``D/2`` complex
  channel uses of unit-power pairs), rescales by the norm sent digitally and injects it;
  the receiver generates from the hybrid prompt (its fixed-seed latents), and the
  backend measures LPIPS, CLIP-I and, with a DINO checkpoint, DINO-I.

Everything is seeded (textual-inversion seed, channel seed, the receiver's seed), so
reruns on one machine are bit-identical. Results are memoised in the cache's model
outputs (kinds ``tisc-embedding``, ``tisc-quality``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

PLACEHOLDER_WORD = "*"
"""The word standing for ``<*>`` in the prompt the text encoder sees (one BPE token)."""


@dataclass(frozen=True)
class TiscResult:
    """What :func:`measure_tisc` returns for one image at one training SNR.

    Attributes:
        words: the caption's ``n`` words (before replacement).
        token_index: index of the word replaced by the placeholder.
        embedding_dim: ``D``, real values of the embedding (``D / 2`` channel uses).
        snr_grid_db: ``[S]`` channel SNRs, dB.
        prefix_quality: metric -> ``[3]`` after 0 units (empty prompt), 1 unit (the
            caption without the token's word: the placeholder has no embedding yet) and
            2 units (= ``analog_quality`` at the top of the grid).
        analog_quality: metric -> ``[S]`` with the embedding received at each SNR.
        decode_time_s: ``[3]`` measured generation wall time per image (0 for k = 0).
        losses: ``[steps]`` training losses; ``eval_loss``: ``[2]`` noise-free evaluation
            loss before and after training.
        receiver: the receiver's settings key (provenance).
    """

    words: list[str]
    token_index: int
    embedding_dim: int
    snr_grid_db: np.ndarray
    prefix_quality: dict[str, np.ndarray]
    analog_quality: dict[str, np.ndarray]
    decode_time_s: np.ndarray
    losses: np.ndarray
    eval_loss: np.ndarray
    receiver: str


@contextlib.contextmanager
def inject_placeholder(
    text_encoder: Any, placeholder_id: int, vectors: torch.Tensor
) -> Iterator[None]:
    """While active, the input embedding of every ``placeholder_id`` token is replaced by
    ``vectors: [B, D]`` (row ``b`` for batch item ``b``; ``[1, D]`` for all items).
    Differentiable with respect to ``vectors``."""
    layer = text_encoder.get_input_embeddings()

    def hook(_module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        ids = args[0]
        mask = ids == placeholder_id
        if not bool(mask.any()):
            return output
        vec = vectors.to(device=output.device, dtype=output.dtype)
        if vec.shape[0] == 1:
            vec = vec.expand(output.shape[0], -1)
        return torch.where(mask[..., None], vec[:, None, :], output)

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def placeholder_tokens(tokenizer: Any, words: Sequence[str], pick: int) -> tuple[np.ndarray, int]:
    """Input ids ``[T]`` of ``words`` with word ``pick`` replaced by :data:`PLACEHOLDER_WORD`,
    and the placeholder's token id (it must be one token, not elsewhere in the prompt)."""
    from aigcsim.models.backends.prompt_tokens import tokenize_words

    sent = [PLACEHOLDER_WORD if i == pick else w for i, w in enumerate(words)]
    tokens = tokenize_words(tokenizer, sent)
    positions = np.flatnonzero(tokens.membership()[:, pick])
    if positions.size != 1:
        raise ValueError(f"placeholder {PLACEHOLDER_WORD!r} is {positions.size} tokens, need 1")
    pid = int(tokens.input_ids[positions[0]])
    if int((np.asarray(tokens.input_ids) == pid).sum()) != 1:
        raise ValueError(f"the caption already contains the placeholder {PLACEHOLDER_WORD!r}")
    return np.asarray(tokens.input_ids), pid


def word_embedding(text_encoder: Any, tokenizer: Any, word: str) -> torch.Tensor:
    """``[D]`` float32: mean token embedding of ``word``'s BPE pieces (TI initialisation)."""
    from aigcsim.models.backends.prompt_tokens import tokenize_words

    tokens = tokenize_words(tokenizer, [word])
    ids = np.asarray(tokens.input_ids)[np.flatnonzero(tokens.membership()[:, 0])]
    table = text_encoder.get_input_embeddings().weight
    return table[torch.as_tensor(ids, device=table.device)].float().mean(0).detach().cpu()


def image_latents(pipe: Any, pixels: np.ndarray, height: int, width: int) -> torch.Tensor:
    """``[1, C, h, w]`` VAE latents (distribution mean x scaling factor) of ``pixels``
    centre-cropped to the receiver's aspect ratio and resized to ``height x width``."""
    from PIL import Image

    h, w = pixels.shape[:2]
    target = width / height
    if w / h > target:
        cw = int(round(h * target))
        pixels = pixels[:, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = int(round(w / target))
        pixels = pixels[(h - ch) // 2 : (h - ch) // 2 + ch]
    img = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BICUBIC))
    x = torch.from_numpy(img.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    vae = pipe.vae
    with torch.no_grad():
        dist = vae.encode(x.to(vae.device, vae.dtype)).latent_dist
    return (dist.mean * vae.config.scaling_factor).float()


def textual_inversion(
    pipe: Any,
    latents: torch.Tensor,
    input_ids: np.ndarray,
    placeholder_id: int,
    init: torch.Tensor,
    *,
    train_snr_db: float | None,
    steps: int,
    learning_rate: float,
    seed: int,
    eval_draws: int = 8,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Learn the placeholder's embedding (see the module docstring).

    Args:
        pipe: a Stable Diffusion pipeline (``text_encoder``, ``unet``, ``scheduler``).
        latents: ``[1, C, h, w]`` image latents.
        input_ids: ``[T]`` prompt ids containing ``placeholder_id`` once.
        init: ``[D]`` initial embedding.
        train_snr_db: noise-robust training SNR (dB), ``None`` for noise-free training.

    Returns:
        ``(v [D] float32 CPU, losses [steps], eval_loss [2] before / after)``.
    """
    from diffusers import DDPMScheduler

    unet, encoder = pipe.unet, pipe.text_encoder
    unet.requires_grad_(False)
    encoder.requires_grad_(False)
    device, dtype = unet.device, unet.dtype
    sched = DDPMScheduler.from_config(pipe.scheduler.config)  # type: ignore[no-untyped-call]
    n_train = int(sched.config.num_train_timesteps)
    v_pred = sched.config.prediction_type == "v_prediction"
    ids = torch.as_tensor(input_ids, device=encoder.device)[None]
    x0 = latents.to(device, torch.float32)
    dim = int(init.numel())

    def loss_at(vec: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        with inject_placeholder(encoder, placeholder_id, vec[None]):
            cond = encoder(ids)[0].to(dtype)
        x_t = sched.add_noise(x0, eps, t)
        pred = unet(x_t.to(dtype), t.to(device), encoder_hidden_states=cond).sample.float()
        target = sched.get_velocity(x0, eps, t) if v_pred else eps
        return torch.mean((pred - target) ** 2)

    eval_gen = torch.Generator().manual_seed(seed + 1)
    eval_set = [
        (torch.randint(0, n_train, (1,), generator=eval_gen),
         torch.randn(x0.shape, generator=eval_gen).to(device))
        for _ in range(eval_draws)
    ]  # fmt: skip

    def evaluate(vec: torch.Tensor) -> float:
        with torch.no_grad():
            return float(np.mean([float(loss_at(vec, t, e)) for t, e in eval_set]))

    v = init.detach().to(device, torch.float32).clone().requires_grad_(True)
    before = evaluate(v.detach())
    opt = torch.optim.Adam([v], lr=learning_rate)
    gen = torch.Generator().manual_seed(seed)
    losses = np.empty(steps)
    for step in range(steps):
        t = torch.randint(0, n_train, (1,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen).to(device)
        noise = torch.randn(dim, generator=gen).to(device)
        vec = v
        if train_snr_db is not None:
            sigma = v.detach().norm() / math.sqrt(dim) * 10.0 ** (-train_snr_db / 20.0)
            vec = v + sigma * noise
        loss = loss_at(vec, t, eps)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses[step] = float(loss.detach())
    after = evaluate(v.detach())
    return v.detach().float().cpu(), losses, np.array([before, after])


def received_embeddings(v: torch.Tensor, snr_db: np.ndarray, seed: int) -> torch.Tensor:
    """``[S, D]``: ``v`` normalised to unit power per real component, AWGN of variance
    ``1 / SNR`` per component at each SNR (one draw each, from ``seed``), rescaled by the
    norm (sent digitally)."""
    d = v.numel()
    scale = v.norm() / math.sqrt(d)
    v_hat = v / scale
    gen = torch.Generator().manual_seed(seed)
    out = []
    for s in np.asarray(snr_db, dtype=np.float64):
        n = torch.randn(d, generator=gen) * 10.0 ** (-float(s) / 20.0)
        out.append((v_hat + n) * scale)
    return torch.stack(out)


def measure_tisc(
    backend: Any,
    image: Any,
    *,
    train_snr_db: float | None,
    snr_grid_db: np.ndarray,
    steps: int,
    learning_rate: float,
    ti_seed: int,
    channel_seed: int,
    store: Any,
) -> TiscResult:
    """Caption, token choice, noise-robust TI and generation over ``snr_grid_db`` for one
    image on a diffusers backend (``backend.receiver``, ``backend.word_attention``,
    ``backend.quality``); model outputs memoised in ``store``."""
    from aigcsim.models.encoders.seq_words_measured import caption_words
    from aigcsim.models.encoders.tisc import attention_pick

    receiver = backend.receiver
    pipe = receiver.pipe
    words = caption_words(image, backend, store)
    attention_model = backend.model_ids().get("text_attention", "text-attention")
    att = store.get_or_compute(
        image.sha256,
        "word_attention",
        f"{attention_model}|{' '.join(words)}",
        lambda: backend.word_attention(words),
    )
    pick = attention_pick(np.asarray(att))
    input_ids, pid = placeholder_tokens(pipe.tokenizer, words, pick)
    noise = "clean" if train_snr_db is None else f"{train_snr_db:g}"
    ti_key = (
        f"{backend.receiver_key()}|{' '.join(words)}|pick={pick}|train_snr={noise}|"
        f"steps={steps}|lr={learning_rate:g}|seed={ti_seed}"
    )
    learned: dict[str, np.ndarray] = {}

    def learn() -> dict[str, np.ndarray]:
        if not learned:
            lat = image_latents(pipe, image.pixels, receiver.height, receiver.width)
            init = word_embedding(pipe.text_encoder, pipe.tokenizer, words[pick])
            v, losses, ev = textual_inversion(
                pipe, lat, input_ids, pid, init, train_snr_db=train_snr_db, steps=steps,
                learning_rate=learning_rate, seed=ti_seed,
            )  # fmt: skip
            learned["v"] = v.numpy().astype(np.float64)
            learned["log"] = np.concatenate([ev, losses])
        return learned

    v = np.asarray(
        store.get_or_compute(image.sha256, "tisc-embedding", ti_key, lambda: learn()["v"])
    )
    log = np.asarray(
        store.get_or_compute(image.sha256, "tisc-losses", ti_key, lambda: learn()["log"])
    )
    grid = np.asarray(snr_grid_db, dtype=np.float64)
    names = metric_names(backend)
    q_key = f"{ti_key}|snr={','.join(f'{s:g}' for s in grid)}|channel_seed={channel_seed}|{names}"

    def generate_all() -> np.ndarray:
        sent = [w for i, w in enumerate(words) if i != pick]
        rows = []
        for prompt, vec in [("", None), (" ".join(sent), None)] + [
            (None, r) for r in received_embeddings(torch.from_numpy(v).float(), grid, channel_seed)
        ]:
            t0 = time.perf_counter()
            if vec is None:
                img = receiver.generate([prompt])
            else:
                hybrid = " ".join(PLACEHOLDER_WORD if i == pick else w for i, w in enumerate(words))
                with inject_placeholder(pipe.text_encoder, pid, vec[None]):
                    img = receiver.generate([hybrid])
            seconds = time.perf_counter() - t0
            q = measure_metrics(backend, image.pixels, img)
            rows.append([*(float(q[m][0]) for m in names), seconds])
        return np.asarray(rows, dtype=np.float64).T  # [M + 1, S + 2]

    table = np.asarray(store.get_or_compute(image.sha256, "tisc-quality", q_key, generate_all))
    analog = {m: table[i, 2:].copy() for i, m in enumerate(names)}
    prefix = {m: np.array([table[i, 0], table[i, 1], table[i, -1]]) for i, m in enumerate(names)}
    decode = np.array([0.0, table[-1, 1], float(np.median(table[-1, 2:]))])
    return TiscResult(
        words=list(words),
        token_index=pick,
        embedding_dim=int(v.size),
        snr_grid_db=grid,
        prefix_quality=prefix,
        analog_quality=analog,
        decode_time_s=decode,
        losses=log[2:],
        eval_loss=log[:2],
        receiver=backend.receiver_key(),
    )


def metric_names(backend: Any) -> tuple[str, ...]:
    """Metrics measured for TISC: LPIPS, CLIP-I, and DINO-I where a DINO model is set."""
    has_dino = getattr(getattr(backend, "settings", None), "dino", None)
    return ("lpips", "clip_i", "dino_i") if has_dino else ("lpips", "clip_i")


def measure_metrics(
    backend: Any, reference: np.ndarray, images: np.ndarray
) -> dict[str, np.ndarray]:
    """``backend.quality`` (LPIPS, CLIP-I) plus DINO-I when the backend has a DINO model."""
    q = dict(backend.quality(reference, images))
    if "dino_i" in metric_names(backend):
        ref = backend.to_metric_size(reference)[0]
        q["dino_i"] = backend.dino_similarity(ref, backend.to_metric_size(images))
    return q
