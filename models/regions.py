"""Image regions from an attention map: binarisation + DBSCAN (the ``cross-attn`` encoder's
visual side, after the cross-modal generative semantic communication paper).

Given an attention map ``[h, w]`` (e.g. the diffusion model's cross-attention for the
prompt's key words, aggregated over heads, layers and steps), the map is binarised at a
quantile, the above-threshold cells are clustered with DBSCAN in map coordinates, and
each cluster becomes a :class:`Region`: its cells, its bounding box and its importance
(the attention mass it holds). Regions are returned most important first, the order in
which the encoder sends them. :func:`region_bits` compresses each region's crop of
the image (JPEG) to size the units.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from aigcsim.models.pixels import check_pixels


@dataclass(frozen=True)
class Region:
    """One cluster of attended cells.

    Attributes:
        cells: ``[m, 2]`` int (row, col) map cells in the region.
        bbox: ``(row0, col0, row1, col1)`` in map cells, end-exclusive.
        importance: attention mass of the region's cells (sum of the map over ``cells``).
    """

    cells: np.ndarray
    bbox: tuple[int, int, int, int]
    importance: float

    def pixel_box(
        self, map_shape: tuple[int, int], image_shape: tuple[int, ...]
    ) -> tuple[int, int, int, int]:
        """The bounding box in image pixels ``(y0, x0, y1, x1)`` (end-exclusive)."""
        sy, sx = image_shape[0] / map_shape[0], image_shape[1] / map_shape[1]
        r0, c0, r1, c1 = self.bbox
        return (
            int(np.floor(r0 * sy)),
            int(np.floor(c0 * sx)),
            int(np.ceil(r1 * sy)),
            int(np.ceil(c1 * sx)),
        )


def binarise(attention: np.ndarray, quantile: float = 0.8) -> np.ndarray:
    """``[h, w]`` bool: cells at or above the ``quantile`` of the map (and above 0)."""
    a = np.asarray(attention, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"attention map must be 2-D and non-empty, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("attention map has non-finite values")
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f"quantile must be in [0, 1), got {quantile}")
    return (a >= np.quantile(a, quantile)) & (a > 0)


def find_regions(
    attention: np.ndarray, quantile: float = 0.8, eps_cells: float = 1.5, min_cells: int = 3
) -> list[Region]:
    """Regions of an attention map ``[h, w]``, most important first.

    ``eps_cells`` and ``min_cells`` are DBSCAN's neighbourhood radius (in cells; 1.5
    joins 8-neighbours) and minimum samples; isolated cells are noise and dropped.
    """
    from sklearn.cluster import DBSCAN

    a = np.asarray(attention, dtype=np.float64)
    mask = binarise(a, quantile)
    cells = np.argwhere(mask)
    if cells.shape[0] == 0:
        return []
    labels = DBSCAN(eps=eps_cells, min_samples=min_cells).fit_predict(cells)
    regions = []
    for label in np.unique(labels[labels >= 0]):
        member = cells[labels == label]
        r0, c0 = member.min(axis=0)
        r1, c1 = member.max(axis=0) + 1
        mass = float(a[member[:, 0], member[:, 1]].sum())
        regions.append(Region(member, (int(r0), int(c0), int(r1), int(c1)), mass))
    regions.sort(key=lambda r: (-r.importance, r.bbox))
    return regions


def region_bits(
    pixels: np.ndarray, regions: list[Region], map_shape: tuple[int, int], jpeg_quality: int = 75
) -> np.ndarray:
    """``[len(regions)]`` bits of each region's image crop as a JPEG at ``jpeg_quality``."""
    from PIL import Image

    px = check_pixels(pixels)
    out = np.zeros(len(regions))
    for i, region in enumerate(regions):
        y0, x0, y1, x1 = region.pixel_box(map_shape, px.shape)
        buf = io.BytesIO()
        Image.fromarray(px[y0:y1, x0:x1]).save(buf, format="JPEG", quality=jpeg_quality)
        out[i] = 8.0 * buf.tell()
    return out
