"""Our offline stand-in for LaMI-GO's VQ-GAN + masked-token diffusion receiver.

Nothing on PyPI ships a VQ-GAN, so this module trains a patch codebook itself:

* **Tokeniser.** The image ``[H, W, 3]`` uint8 is resized (Pillow LANCZOS) to a
  *working size* ``[H', W']`` of about ``image_px**2`` pixels with the same aspect ratio,
  both sides multiples of the patch size ``p``; it is cut into non-overlapping ``p x p``
  patches, each a vector of ``D = p*p*3`` pixel values (0..255, float32). A token is the
  index of the nearest codeword (squared L2). Token grid: ``[h, w] = [H'/p, W'/p]``.
* **Codebook.** ``K`` codewords ``[K, D]`` from scikit-learn ``MiniBatchKMeans`` with a
  fixed ``random_state``, fitted on patches of the training images taken at stride
  ``p // 2`` (overlapping patches, 4x the data of the token grid).
* **Decoder.** Codeword lookup, patches reassembled into ``[H', W', 3]``, rounded,
  clipped to uint8, resized (LANCZOS) back to the original ``[H, W]``.
* **Receiver prior** (:func:`fill_tokens`, a boundary-continuity MRF fill standing in for
  the text-conditioned diffusion model; it ignores the caption). The cost of codeword
  ``k`` at a position is the weighted mean squared difference between the pixels of ``k``
  on each side and the facing pixels of the known neighbour on that side: edge rows/
  columns for the 4 edge neighbours (weight 1), corner pixels for the 4 diagonal ones
  (weight 0.25). Unknown positions are filled greedily outward, most-known first: each
  round fills (with their argmin codeword) every unknown position whose score
  ``2 * known edge neighbours + known diagonal neighbours`` is the current maximum.
  Then ``refine_steps`` sweeps re-predict every unknown position from its full
  neighbourhood, checkerboard half-sweep by half-sweep. Known (received) positions are
  never changed: every step applies eq. 12 of LaMI-GO,
  ``I_i = (1 - M) * I_e + M * I_p,i``. With no known position at all, every position
  gets the codeword closest to uniform mid-grey.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from aigcsim.models.pixels import check_pixels

MID_GREY = 128.0
CORNER_WEIGHT = 0.25

# Neighbour offsets (da, db) and, for each, which side of the candidate faces it.
_EDGE_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))
_CORNER_NEIGHBOURS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def working_size(height: int, width: int, image_px: int, patch_px: int) -> tuple[int, int]:
    """``(H', W')``: about ``image_px**2`` pixels, aspect kept, multiples of ``patch_px``."""
    s = image_px / np.sqrt(height * width)
    hp = max(patch_px, int(round(height * s / patch_px)) * patch_px)
    wp = max(patch_px, int(round(width * s / patch_px)) * patch_px)
    return hp, wp


def resize(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[H, W, 3]`` uint8 -> ``[height, width, 3]`` uint8 (Pillow LANCZOS; copy if same)."""
    if pixels.shape[:2] == (height, width):
        return pixels.copy()
    from PIL import Image

    im = Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


def to_patches(img: np.ndarray, patch_px: int, stride: int | None = None) -> np.ndarray:
    """``[H', W', 3]`` -> ``[h, w, p*p*3]`` float32 patch vectors (row-major inside a patch).

    With ``stride < p`` the patches overlap (used for codebook training only)."""
    p = patch_px
    s = stride or p
    win = np.lib.stride_tricks.sliding_window_view(img, (p, p, 3))[::s, ::s, 0]
    return win.reshape(win.shape[0], win.shape[1], p * p * 3).astype(np.float32)


def from_patches(vectors: np.ndarray, patch_px: int) -> np.ndarray:
    """``[h, w, p*p*3]`` -> ``[h*p, w*p, 3]`` float32."""
    h, w, _ = vectors.shape
    p = patch_px
    return vectors.reshape(h, w, p, p, 3).transpose(0, 2, 1, 3, 4).reshape(h * p, w * p, 3)


@dataclass(frozen=True)
class VQCodebook:
    """A patch codebook.

    Attributes:
        codewords: ``[K, p*p*3]`` float32 pixel values (0..255).
        patch_px: patch side ``p`` in working-size pixels.
        image_px: working size is about ``image_px x image_px`` pixels.
    """

    codewords: np.ndarray
    patch_px: int
    image_px: int
    _edge_cost: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cw = np.asarray(self.codewords, dtype=np.float32)
        if cw.ndim != 2 or cw.shape[1] != self.patch_px**2 * 3:
            raise ValueError(
                f"codewords must have shape [K, {self.patch_px**2 * 3}], got {cw.shape}"
            )
        object.__setattr__(self, "codewords", cw)
        object.__setattr__(self, "_edge_cost", _pair_costs(cw, self.patch_px))

    @property
    def size(self) -> int:
        return int(self.codewords.shape[0])

    @property
    def key(self) -> str:
        """Content address of the codebook (16 hex digits)."""
        h = hashlib.sha256(self.codewords.tobytes())
        h.update(f"p={self.patch_px};px={self.image_px}".encode())
        return h.hexdigest()[:16]

    @property
    def grey_token(self) -> int:
        """Codeword closest to a uniform mid-grey patch (prior's unconditional fill)."""
        return int(np.argmin(((self.codewords - MID_GREY) ** 2).sum(axis=1)))

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """Token grid ``(h, w)`` for an ``[height, width]`` image."""
        hp, wp = working_size(height, width, self.image_px, self.patch_px)
        return hp // self.patch_px, wp // self.patch_px

    def quantise(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens ``[h, w]`` int64 and quantisation error ``[h, w]`` float64 (RMS pixel
        difference between each patch and its codeword, 0..255 units)."""
        px = check_pixels(pixels, "image pixels")
        hp, wp = working_size(px.shape[0], px.shape[1], self.image_px, self.patch_px)
        x = to_patches(resize(px, hp, wp), self.patch_px)
        h, w, d = x.shape
        flat = x.reshape(-1, d).astype(np.float64)
        cw = self.codewords.astype(np.float64)
        d2 = (flat**2).sum(1)[:, None] - 2.0 * flat @ cw.T + (cw**2).sum(1)[None, :]
        tokens = np.argmin(d2, axis=1)
        err = np.maximum(d2[np.arange(flat.shape[0]), tokens], 0.0) / d
        return tokens.reshape(h, w), np.sqrt(err).reshape(h, w)

    def decode(self, tokens: np.ndarray, height: int, width: int) -> np.ndarray:
        """Tokens ``[h, w]`` (or ``[B, h, w]``) -> ``[height, width, 3]`` (or batched) uint8."""
        t = np.asarray(tokens)
        if t.ndim == 3:
            return np.stack([self.decode(ti, height, width) for ti in t])
        if t.ndim != 2 or t.min(initial=0) < 0 or t.max(initial=0) >= self.size:
            raise ValueError(f"tokens must be [h, w] in 0..{self.size - 1}, got {t.shape}")
        img = from_patches(self.codewords[t], self.patch_px)
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        return resize(img, height, width)


def fit_codebook(
    images: Sequence[np.ndarray],
    *,
    patch_px: int = 8,
    codebook_size: int = 256,
    image_px: int = 256,
    random_state: int = 0,
) -> VQCodebook:
    """Train a :class:`VQCodebook` on ``images`` (each ``[H, W, 3]`` uint8) with
    MiniBatchKMeans (``random_state`` fixed, ``n_init=3``, batch 2048)."""
    from sklearn.cluster import MiniBatchKMeans

    if not images:
        raise ValueError("fit_codebook needs at least one image")
    stride = max(1, patch_px // 2)
    parts = []
    for i, im in enumerate(images):
        px = check_pixels(im, "image pixels")
        hp, wp = working_size(px.shape[0], px.shape[1], image_px, patch_px)
        try:
            parts.append(
                to_patches(resize(px, hp, wp), patch_px, stride).reshape(-1, 3 * patch_px**2)
            )
        except ValueError as exc:
            raise ValueError(f"training image {i}: {exc}") from None
    data = np.concatenate(parts)
    if data.shape[0] < codebook_size:
        raise ValueError(
            f"{data.shape[0]} training patches are fewer than codebook_size={codebook_size}"
        )
    km = MiniBatchKMeans(
        n_clusters=codebook_size, random_state=random_state, batch_size=2048, n_init=3
    ).fit(data)
    return VQCodebook(km.cluster_centers_.astype(np.float32), patch_px, image_px)


# ------------------------------------------------------------------ receiver prior
def _pair_costs(codewords: np.ndarray, p: int) -> np.ndarray:
    """``[8, K, K]``: cost[d, j, k] = mean squared difference between the side of
    candidate ``k`` facing neighbour direction ``d`` and the facing side of neighbour ``j``
    (directions: the 4 edge neighbours then the 4 diagonal ones, as in the offsets)."""
    c = codewords.reshape(-1, p, p, 3).astype(np.float64)
    top, bottom = c[:, 0].reshape(len(c), -1), c[:, -1].reshape(len(c), -1)
    left, right = c[:, :, 0].reshape(len(c), -1), c[:, :, -1].reshape(len(c), -1)
    tl, tr, bl, br = c[:, 0, 0], c[:, 0, -1], c[:, -1, 0], c[:, -1, -1]
    # (candidate side, neighbour side) for each direction
    pairs = [
        (top, bottom),  # neighbour above
        (bottom, top),  # below
        (left, right),  # left
        (right, left),  # right
        (tl, br),  # above-left
        (tr, bl),  # above-right
        (bl, tr),  # below-left
        (br, tl),  # below-right
    ]
    out = np.empty((8, len(c), len(c)), dtype=np.float32)
    for d, (cand, nbr) in enumerate(pairs):
        sq = (nbr**2).sum(1)[:, None] - 2.0 * nbr @ cand.T + (cand**2).sum(1)[None, :]
        out[d] = np.maximum(sq, 0.0) / cand.shape[1]
    return out


def _neighbours(tokens: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[8, h, w]`` neighbour tokens (0 where off-grid) and ``[8, h, w]`` bool known."""
    h, w = tokens.shape
    tp = np.pad(tokens, 1)
    kp = np.pad(known, 1)
    offs = _EDGE_NEIGHBOURS + _CORNER_NEIGHBOURS
    nt = np.stack([tp[1 + da : 1 + da + h, 1 + db : 1 + db + w] for da, db in offs])
    nk = np.stack([kp[1 + da : 1 + da + h, 1 + db : 1 + db + w] for da, db in offs])
    return nt, nk


def _predict(
    codebook: VQCodebook, tokens: np.ndarray, known: np.ndarray, where: np.ndarray
) -> np.ndarray:
    """Argmin-cost codeword ``[n]`` at the positions ``where: [h, w]`` bool, from the
    currently known neighbours."""
    nt, nk = _neighbours(tokens, known)
    idx = np.flatnonzero(where.ravel())
    weights = np.array([1.0] * 4 + [CORNER_WEIGHT] * 4)
    cost = np.zeros((idx.size, codebook.size))
    wsum = np.zeros(idx.size)
    for d in range(8):
        k_d = nk[d].ravel()[idx]
        if not k_d.any():
            continue
        sel = np.flatnonzero(k_d)
        cost[sel] += weights[d] * codebook._edge_cost[d][nt[d].ravel()[idx[sel]]]
        wsum[sel] += weights[d]
    return np.argmin(cost / np.maximum(wsum, 1e-12)[:, None], axis=1)


def fill_tokens(
    codebook: VQCodebook, tokens: np.ndarray, known: np.ndarray, refine_steps: int = 2
) -> np.ndarray:
    """Fill the unknown positions of ``tokens: [h, w]`` (``known: [h, w]`` bool) with the
    boundary-continuity prior (see the module docstring); known tokens are returned
    unchanged. Returns ``[h, w]`` int64."""
    t = np.asarray(tokens).astype(np.int64)
    k = np.asarray(known, dtype=bool)
    if t.shape != k.shape or t.ndim != 2:
        raise ValueError(f"tokens {t.shape} and known {k.shape} must be the same [h, w]")
    received = t.copy()
    mask = ~k  # M: positions the prior predicts
    if not k.any():
        return np.full(t.shape, codebook.grey_token, dtype=np.int64)
    out = np.where(k, t, 0)
    filled = k.copy()
    while not filled.all():
        _, nk = _neighbours(out, filled)
        score = 2 * nk[:4].sum(0) + nk[4:].sum(0)
        score[filled] = -1
        best = score.max()
        if best <= 0:  # unreachable: a grid is connected through 8-neighbours
            raise RuntimeError("prior fill found no position next to a known one")
        where = score == best
        out[where] = _predict(codebook, out, filled, where)
        filled |= where
    parity = np.add.outer(np.arange(t.shape[0]), np.arange(t.shape[1])) % 2
    for _ in range(refine_steps):
        for par in (0, 1):
            where = mask & (parity == par)
            if where.any():
                pred = _predict(codebook, out, np.ones_like(k), where)
                out[where] = pred
            out = np.where(mask, out, received)  # eq. 12: received indices kept fixed
    return out
