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


def _weighted_costs(codebook: VQCodebook) -> np.ndarray:
    """``[8, K + 1, K]`` float64: ``_edge_cost`` times each direction's weight (1 for
    edges, :data:`CORNER_WEIGHT` for corners), plus a row of zeros at index ``K`` that an
    unknown neighbour reads (adding an exact ``0.0`` changes no sum). Computed once per
    codebook; these are the terms every prediction cost is summed from."""
    cached = codebook.__dict__.get("_weighted_cost")
    if cached is None:
        k = codebook.size
        cached = np.zeros((8, k + 1, k))
        for d in range(8):
            cached[d, :k] = _WEIGHTS[d] * codebook._edge_cost[d]
        object.__setattr__(codebook, "_weighted_cost", cached)
    return cached


@dataclass(frozen=True)
class _SideGeometry:
    """The pair costs as one matrix product (float64), for screening candidates.

    ``cost_d(j, k) = |n_d(j)|^2 - 2 n_d(j) . c_d(k) + |c_d(k)|^2`` over ``L_d`` pixel
    values, with ``c_d(k)`` the side of candidate ``k`` facing direction ``d`` and
    ``n_d(j)`` the facing side of neighbour ``j``. ``cand`` stacks ``c_d(k)`` for the 8
    directions and then ``|c_d(k)|^2``: ``[60 + 8, K]`` (4 sides of ``3p`` values, 4
    corners of 3); ``nbr[d]`` is ``[K, L_d]``, ``nbr_sq`` ``[8, K]``, ``lengths`` ``[8]``.
    """

    cand: np.ndarray
    nbr: tuple[np.ndarray, ...]
    nbr_sq: np.ndarray
    lengths: np.ndarray


def _side_geometry(codebook: VQCodebook) -> _SideGeometry:
    cached = codebook.__dict__.get("_side_geometry")
    if cached is None:
        p, k = codebook.patch_px, codebook.size
        c = codebook.codewords.reshape(k, p, p, 3).astype(np.float64)
        top, bottom = c[:, 0].reshape(k, -1), c[:, -1].reshape(k, -1)
        left, right = c[:, :, 0].reshape(k, -1), c[:, :, -1].reshape(k, -1)
        tl, tr, bl, br = c[:, 0, 0], c[:, 0, -1], c[:, -1, 0], c[:, -1, -1]
        # (candidate side, neighbour side) per direction, as in _pair_costs
        pairs = [(top, bottom), (bottom, top), (left, right), (right, left),
                 (tl, br), (tr, bl), (bl, tr), (br, tl)]  # fmt: skip
        cand = np.concatenate(
            [a.T for a, _ in pairs] + [np.stack([(a * a).sum(axis=1) for a, _ in pairs])]
        )
        cached = _SideGeometry(
            cand=np.ascontiguousarray(cand),
            nbr=tuple(b for _, b in pairs),
            nbr_sq=np.stack([(b * b).sum(axis=1) for _, b in pairs]),
            lengths=np.array([a.shape[1] for a, _ in pairs], dtype=np.float64),
        )
        object.__setattr__(codebook, "_side_geometry", cached)
    return cached


_OFFSETS = np.array(_EDGE_NEIGHBOURS + _CORNER_NEIGHBOURS)  # [8, 2] (da, db)
_WEIGHTS = np.array([1.0] * 4 + [CORNER_WEIGHT] * 4)
_SCORE_STEP = np.array([2] * 4 + [1] * 4)
"""What a known neighbour adds to a position's fill score, per direction."""
ARGMIN_BLOCK = 1024
"""Positions costed at a time in :func:`argmin_costs` (a ``[1024, K]`` float64 block)."""
SCREEN_REL, SCREEN_ABS = 4e-7, 1e-4
"""Candidate window of :func:`argmin_costs`: codewords whose screened cost is within
``SCREEN_REL * |min| + SCREEN_ABS`` of the row's screened minimum are costed exactly."""
_DONE = np.int16(-1000)
"""Fill score of a position that is known or outside the grid (never picked)."""


def exact_costs(codebook: VQCodebook, neighbours: np.ndarray) -> np.ndarray:
    """``[n, K]`` float64 prediction costs of ``n`` positions, the reference definition.

    ``neighbours: [8, n]`` int: the neighbour token in each direction (order of
    :data:`_EDGE_NEIGHBOURS` then :data:`_CORNER_NEIGHBOURS`), or ``K`` where that
    neighbour is unknown. ``cost[i, k] = (sum over known d, in order, of w_d *
    E_d[t_d, k]) / max(sum of known w_d, 1e-12)`` with ``E`` the float32 pair costs
    (:func:`_pair_costs`) and ``w`` 1 (edges) or :data:`CORNER_WEIGHT` (corners)."""
    ext = _weighted_costs(codebook)
    t8 = np.asarray(neighbours)
    cost = ext[0][t8[0]]
    for d in range(1, 8):
        cost += ext[d][t8[d]]
    wsum = ((t8 != codebook.size) * _WEIGHTS[:, None]).sum(axis=0)
    cost /= np.maximum(wsum, 1e-12)[:, None]
    return cost


def argmin_costs(codebook: VQCodebook, neighbours: np.ndarray) -> np.ndarray:
    """``[n]`` int64: ``argmin(exact_costs(codebook, neighbours), axis=1)``, exactly
    (first index among equal costs), without summing all ``8 * K`` terms per position.

    A screen computes every cost as one float64 matrix product (:class:`_SideGeometry`)
    and keeps, per position, the codewords within ``tol = SCREEN_REL * |m| + SCREEN_ABS``
    of its screened minimum ``m``; only those are costed exactly, and the first exact
    minimum is returned. Why nothing is lost: the exact cost differs from the real value
    of the same formula only by the float32 rounding of each pair cost (relative
    ``2**-24``) and float64 rounding (below ``1e-8`` for costs of pixel values <= 255), and
    the screen from that real value only by float64 rounding (below ``1e-6``), so
    ``|screen - exact| <= 6e-8 * cost + 2e-6``. The exact minimiser's screened cost is
    then within ``tol`` of ``m``, and every codeword outside the window has an exact cost
    strictly above the exact minimum, so the argmin and its tie-break are unchanged."""
    geo = _side_geometry(codebook)
    ext = _weighted_costs(codebook)
    t8 = np.asarray(neighbours, dtype=np.int64)
    n = t8.shape[1]
    known = t8 != codebook.size
    tc = np.where(known, t8, 0)
    coef = known * (_WEIGHTS / geo.lengths)[:, None]  # [8, n] weight per pixel value
    wsum = np.maximum((known * _WEIGHTS[:, None]).sum(axis=0), 1e-12)
    out = np.empty(n, dtype=np.int64)
    for s in range(0, n, ARGMIN_BLOCK):
        e = min(s + ARGMIN_BLOCK, n)
        c, t = coef[:, s:e], tc[:, s:e]
        x = np.concatenate(
            [(-2.0 * c[d])[:, None] * geo.nbr[d][t[d]].reshape(e - s, -1) for d in range(8)]
            + [c.T],
            axis=1,
        )
        const = (c * geo.nbr_sq[np.arange(8)[:, None], t]).sum(axis=0)
        screen = x @ geo.cand  # [m, K], the screened cost * wsum - const
        best = screen.argmin(axis=1)
        low = screen[np.arange(e - s), best]
        ws = wsum[s:e]
        tol = SCREEN_REL * np.abs((low + const) / ws) + SCREEN_ABS
        window = screen <= (low + tol * ws)[:, None]
        many = np.flatnonzero(np.count_nonzero(window, axis=1) > 1)
        block = best  # a lone codeword in the window is the exact argmin
        if many.size:
            rows, ks = np.nonzero(window[many])
            tr = t8[:, s:e][:, many[rows]]
            cost = ext[0][tr[0], ks]
            for d in range(1, 8):
                cost += ext[d][tr[d], ks]
            cost /= ws[many[rows]]
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            row_min = np.minimum.reduceat(cost, starts)
            hit = cost == row_min[np.searchsorted(starts, np.arange(rows.size), "right") - 1]
            hit_rows, hit_ks = rows[hit], ks[hit]
            first = np.r_[True, hit_rows[1:] != hit_rows[:-1]]
            block[many[hit_rows[first]]] = hit_ks[first]
        out[s:e] = block
    return out


def fill_tokens(
    codebook: VQCodebook, tokens: np.ndarray, known: np.ndarray, refine_steps: int = 2
) -> np.ndarray:
    """Fill the unknown positions of ``tokens: [h, w]`` (``known: [h, w]`` bool) with the
    boundary-continuity prior (see the module docstring); known tokens are returned
    unchanged. Returns ``[h, w]`` int64 (:func:`fill_tokens_batch` of one grid)."""
    t = np.asarray(tokens)
    k = np.asarray(known, dtype=bool)
    if t.shape != k.shape or t.ndim != 2:
        raise ValueError(f"tokens {t.shape} and known {k.shape} must be the same [h, w]")
    return fill_tokens_batch(codebook, t[None], k[None], refine_steps)[0]


def fill_tokens_batch(
    codebook: VQCodebook, tokens: np.ndarray, known: np.ndarray, refine_steps: int = 2
) -> np.ndarray:
    """:func:`fill_tokens` of ``B`` grids at once: ``tokens, known: [B, h, w]`` ->
    ``[B, h, w]`` int64, each grid exactly as filled alone.

    The grids advance in lockstep (round ``r`` of every grid in one step), on flat
    zero-padded arrays: a position's fill score is kept up to date as its neighbours
    fill, and each round costs only the positions it fills (:func:`argmin_costs`)."""
    t = np.asarray(tokens).astype(np.int64)
    k = np.asarray(known, dtype=bool)
    if t.shape != k.shape or t.ndim != 3:
        raise ValueError(f"tokens {t.shape} and known {k.shape} must be the same [B, h, w]")
    if t.size and (t.min() < 0 or t.max() >= codebook.size):
        raise ValueError(f"tokens must be in 0..{codebook.size - 1}")
    num, h, w = t.shape
    out = np.where(k, t, 0)
    some = k.reshape(num, -1).any(axis=1)
    out[~some] = codebook.grey_token  # nothing known: the unconditional fill, no sweeps
    if not some.any() or h * w == 0:
        return out
    idx_some = np.flatnonzero(some)
    hp, wp = h + 2, w + 2
    offsets = _OFFSETS[:, 0] * wp + _OFFSETS[:, 1]  # [8] flat neighbour offsets
    tok = np.zeros((idx_some.size, hp, wp), dtype=np.int64)
    tok[:, 1:-1, 1:-1] = out[idx_some]
    inside = np.zeros((idx_some.size, hp, wp), dtype=bool)
    inside[:, 1:-1, 1:-1] = True
    filled = np.zeros_like(inside)
    filled[:, 1:-1, 1:-1] = k[idx_some]
    todo_mask = inside & ~filled  # M: positions the prior predicts
    tok, inside, filled, todo_mask = (a.reshape(-1) for a in (tok, inside, filled, todo_mask))
    score = np.full(tok.size, _DONE, dtype=np.int16)
    cells = np.flatnonzero(todo_mask)
    score[cells] = (filled[cells[None, :] + offsets[:, None]] * _SCORE_STEP[:, None]).sum(0)
    size = codebook.size
    per_grid = score.reshape(idx_some.size, -1)
    # greedy: every round fills each grid's unknown positions with its highest score
    while True:
        best = per_grid.max(axis=1)
        active = best >= 0
        if not active.any():
            break
        if (best[active] == 0).any():  # unreachable: a grid is connected through 8-neighbours
            raise RuntimeError("prior fill found no position next to a known one")
        where = np.flatnonzero((per_grid == best[:, None]) & active[:, None])
        nb = where[None, :] + offsets[:, None]  # [8, n]
        tok[where] = argmin_costs(codebook, np.where(filled[nb], tok[nb], size))
        filled[where] = True
        score[where] = _DONE
        for d in range(8):
            score[where + offsets[d]] += _SCORE_STEP[d]
    # refinement: checkerboard half-sweeps re-predicting every unknown position from its
    # full neighbourhood; a position whose 8 neighbours are unchanged since its parity's
    # last sweep keeps that sweep's prediction (a prediction depends only on them)
    rows = np.arange(tok.size) // wp % hp
    parity = (rows + np.arange(tok.size) % wp) % 2
    last: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # parity -> (tokens seen, preds)
    for _ in range(refine_steps):
        for par in (0, 1):
            where = todo_mask & (parity == par)
            if par in last:
                seen, pred = last[par]
                changed = tok != seen
                touched = np.zeros_like(changed)
                for off in offsets:  # in-grid positions only: neighbours never wrap
                    if off > 0:
                        touched[:-off] |= changed[off:]
                    else:
                        touched[-off:] |= changed[: tok.size + off]
                redo = np.flatnonzero(where & touched)
                pred = pred.copy()
            else:
                redo = np.flatnonzero(where)
                pred = np.zeros_like(tok)
            if redo.size:
                nb = redo[None, :] + offsets[:, None]
                pred[redo] = argmin_costs(codebook, np.where(inside[nb], tok[nb], size))
            last[par] = (tok.copy(), pred)
            tok[where] = pred[where]
    grids = tok.reshape(idx_some.size, hp, wp)[:, 1:-1, 1:-1]
    out[idx_some] = np.where(k[idx_some], t[idx_some], grids)  # eq. 12: received kept
    return out
