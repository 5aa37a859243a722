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


def _padded(a: np.ndarray) -> np.ndarray:
    """``a: [h, w]`` with a border of zeros (False) one cell wide: ``[h + 2, w + 2]``."""
    out = np.zeros((a.shape[0] + 2, a.shape[1] + 2), dtype=a.dtype)
    out[1:-1, 1:-1] = a
    return out


def _known_score(known: np.ndarray) -> np.ndarray:
    """``[h, w]`` int: ``2 * known edge neighbours + known diagonal neighbours``."""
    h, w = known.shape
    kp = _padded(known).astype(np.int64)
    score = np.zeros((h, w), dtype=np.int64)
    for da, db in _EDGE_NEIGHBOURS:
        score += 2 * kp[1 + da : 1 + da + h, 1 + db : 1 + db + w]
    for da, db in _CORNER_NEIGHBOURS:
        score += kp[1 + da : 1 + da + h, 1 + db : 1 + db + w]
    return score


def _weighted_costs(codebook: VQCodebook) -> np.ndarray:
    """``[8, K, K]`` float64: ``_edge_cost`` times each direction's weight (1 for edges,
    :data:`CORNER_WEIGHT` for corners), computed once per codebook. The products are the
    ones :func:`_predict` used to form per call, so costs are unchanged bit for bit."""
    cached = codebook.__dict__.get("_weighted_cost")
    if cached is None:
        weights = np.array([1.0] * 4 + [CORNER_WEIGHT] * 4)
        cached = np.stack([weights[d] * codebook._edge_cost[d] for d in range(8)])
        object.__setattr__(codebook, "_weighted_cost", cached)
    return cached


_OFFSETS = np.array(_EDGE_NEIGHBOURS + _CORNER_NEIGHBOURS)  # [8, 2] (da, db)
_WEIGHTS = np.array([1.0] * 4 + [CORNER_WEIGHT] * 4)
PREDICT_BLOCK = 128
SMALL_PREDICT = 128
"""Up to this many positions, :func:`_predict` costs all directions in one gather."""
"""Positions costed at a time in :func:`_predict` (a ``[128, K]`` float64 block stays in
cache; rows are independent, so the blocking does not change any result)."""


def _predict(
    codebook: VQCodebook, tokens: np.ndarray, known: np.ndarray, where: np.ndarray
) -> np.ndarray:
    """Argmin-cost codeword ``[n]`` at the positions ``where: [h, w]`` bool, from the
    currently known neighbours.

    Neighbours are read only at ``where`` (not over the whole grid), the weighted pair
    costs are precomputed (:func:`_weighted_costs`) and positions are costed in blocks
    of :data:`PREDICT_BLOCK`; the directions are summed in the same order as the direct
    form (``cost = 0; cost += w_d * E_d[t_d]`` over the known directions), so the result
    is bit-identical to it."""
    rows, cols = np.nonzero(where)
    tp, kp = _padded(tokens), _padded(known)
    nb_r = rows[None, :] + 1 + _OFFSETS[:, :1]  # [8, n]
    nb_c = cols[None, :] + 1 + _OFFSETS[:, 1:]
    k8, t8 = kp[nb_r, nb_c], tp[nb_r, nb_c]  # [8, n] known flags and neighbour tokens
    weighted = _weighted_costs(codebook)
    wsum = (k8 * _WEIGHTS[:, None]).sum(axis=0)  # exact: sums of 1 and 0.25
    if rows.size <= SMALL_PREDICT:  # few positions (most greedy rounds): one gather
        # an unknown direction adds an exact 0.0, which changes no sum
        terms = weighted[np.arange(8)[:, None], t8] * k8[:, :, None]  # [8, n, K]
        cost = terms[0]
        for d in range(1, 8):
            cost += terms[d]
        cost /= np.maximum(wsum, 1e-12)[:, None]
        return np.argmin(cost, axis=1)
    out = np.empty(rows.size, dtype=np.int64)
    size = min(PREDICT_BLOCK, max(rows.size, 1))
    cost_buf = np.empty((size, codebook.size))
    term_buf = np.empty_like(cost_buf)
    for start in range(0, rows.size, PREDICT_BLOCK):
        sl = slice(start, min(start + PREDICT_BLOCK, rows.size))
        m = sl.stop - sl.start
        cost, term = cost_buf[:m], term_buf[:m]
        cost.fill(0.0)
        for d in range(8):
            k_d = k8[d, sl]
            if not k_d.any():
                continue
            if k_d.all():
                np.take(weighted[d], t8[d, sl], axis=0, out=term)
                cost += term
            else:
                sel = np.flatnonzero(k_d)
                cost[sel] += weighted[d][t8[d, sl][sel]]
        cost /= np.maximum(wsum[sl], 1e-12)[:, None]
        out[sl] = np.argmin(cost, axis=1)
    return out


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
        score = _known_score(filled)
        score[filled] = -1
        best = score.max()
        if best <= 0:  # unreachable: a grid is connected through 8-neighbours
            raise RuntimeError("prior fill found no position next to a known one")
        where = score == best
        out[where] = _predict(codebook, out, filled, where)
        filled |= where
    parity = np.add.outer(np.arange(t.shape[0]), np.arange(t.shape[1])) % 2
    everywhere = np.ones_like(k)
    # A prediction depends only on the 8 neighbours' tokens: a position whose
    # neighbourhood is unchanged since its parity's last sweep keeps its last prediction.
    seen: dict[int, np.ndarray] = {}  # parity -> tokens its last sweep predicted from
    last: dict[int, np.ndarray] = {}  # parity -> [h, w] predictions of that sweep
    for _ in range(refine_steps):
        for par in (0, 1):
            where = mask & (parity == par)
            if where.any():
                if par in seen:
                    todo = where & _touched(out != seen[par])
                    pred_grid = last[par].copy()
                    if todo.any():
                        pred_grid[todo] = _predict(codebook, out, everywhere, todo)
                else:
                    pred_grid = np.zeros_like(out)
                    pred_grid[where] = _predict(codebook, out, everywhere, where)
                seen[par], last[par] = out.copy(), pred_grid
                out[where] = pred_grid[where]
            out = np.where(mask, out, received)  # eq. 12: received indices kept fixed
    return out


def _touched(changed: np.ndarray) -> np.ndarray:
    """``[h, w]`` bool: positions with a changed 8-neighbour (``changed: [h, w]``)."""
    h, w = changed.shape
    cp = _padded(changed)
    out = np.zeros((h, w), dtype=bool)
    for da, db in _EDGE_NEIGHBOURS + _CORNER_NEIGHBOURS:
        out |= cp[1 + da : 1 + da + h, 1 + db : 1 + db + w]
    return out
