"""How well vq-mask's grids of measured packet counts trace the dense quality curve.

For each ``--images`` builtin photograph and each default vq-mask level, the curve is
first measured densely: every packet count ``j = 0..P``, ``--patterns`` seeded loss
patterns each (one for ``j = 0`` and ``j = P``), offline backend (LPIPS-Alex, PSNR,
EfficientNet agreement), the codebook path. Each grid configuration (spacing,
``quality_grid``, ``loss_patterns``) is then read off the same reconstructions: its
measured points are the means of its first ``loss_patterns`` patterns at the counts of
:meth:`~aigcsim.models.encoders.vq_mask.VQMaskEncoder.packet_grid` (exactly the
reconstructions a build with those parameters makes, since pattern ``r`` of count ``j``
is seeded by ``SeedSequence([loss_seed, j, r])``), linearly interpolated in between, and
compared with the dense curve (mean of all ``--patterns`` patterns at every ``j``).

Printed per configuration: reconstructions per image, the mean absolute LPIPS error at
the counts it does not measure, the largest absolute LPIPS error at any count, and the
mean absolute PSNR error (dB) at the counts it does not measure.

    python benchmarks/bench_vq_grid.py                  # chelsea, coffee, flower at 512 px
    python benchmarks/bench_vq_grid.py --save-dir /tmp/dense   # keep the dense curves
    python benchmarks/bench_vq_grid.py --load-dir /tmp/dense   # re-read them, no models

About 100-130 CPU-s per photograph at ``--metric-max-side 512`` on one core (the dense
curves are ~770 reconstructions per photograph).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_IMAGES = "skimage/chelsea,skimage/coffee,sklearn/flower"
METRIC_ROWS = ("lpips", "psnr_db", "task_agreement")


@dataclass(frozen=True)
class GridConfig:
    """One way of measuring the curve: spacing, grid size and loss patterns per count."""

    spacing: str  # "linear" | "geometric"
    quality_grid: int
    loss_patterns: int

    @property
    def label(self) -> str:
        return f"{self.spacing} {self.quality_grid} x {self.loss_patterns}"


CONFIGS = (
    GridConfig("linear", 8, 4),  # the earlier default
    GridConfig("linear", 8, 2),
    GridConfig("linear", 4, 2),
    GridConfig("geometric", 8, 4),
    GridConfig("geometric", 8, 2),  # the default
    GridConfig("geometric", 6, 2),
    GridConfig("geometric", 4, 2),
)


@dataclass(frozen=True)
class DenseCurve:
    """The dense measurement of one (image, level).

    Attributes:
        counts: ``[n]`` packet count ``j`` of each reconstruction.
        pattern: ``[n]`` loss pattern index ``r`` of each reconstruction (0 at j = 0, P).
        metrics: ``[M, n]`` metrics of each reconstruction, rows :data:`METRIC_ROWS`
            (the first ``M``).
    """

    counts: np.ndarray
    pattern: np.ndarray
    metrics: np.ndarray

    @property
    def num_packets(self) -> int:
        return int(self.counts.max())

    def curve(self, row: int, max_patterns: int | None = None) -> np.ndarray:
        """``[P + 1]`` mean of metric ``row`` at every count over the patterns
        ``r < max_patterns`` (all when None)."""
        keep = np.ones(self.counts.size, bool) if max_patterns is None else (
            self.pattern < max_patterns
        )  # fmt: skip
        return np.array(
            [
                self.metrics[row, keep & (self.counts == j)].mean()
                for j in range(self.num_packets + 1)
            ]
        )


@dataclass(frozen=True)
class GridError:
    """Errors of one configuration over every (image, level) given."""

    config: GridConfig
    reconstructions_per_image: float
    lpips_mean_held_out: float
    lpips_max: float
    psnr_db_mean_held_out: float


def packet_grid(config: GridConfig, num_packets: int) -> np.ndarray:
    """The counts a build with ``config`` measures (the encoder's own grid)."""
    from aigcsim.models.encoders.vq_mask import VQMaskEncoder, VQMaskParams

    params = VQMaskParams(
        grid_spacing=config.spacing,  # type: ignore[arg-type]
        quality_grid=config.quality_grid,
        loss_patterns=config.loss_patterns,
    )
    return VQMaskEncoder(params).packet_grid(num_packets)


def grid_errors(
    curves: dict[str, list[DenseCurve]], configs: tuple[GridConfig, ...] = CONFIGS
) -> list[GridError]:
    """Interpolation error of each of ``configs`` against the dense ``curves`` (image id ->
    its levels' curves). LPIPS is row 0, PSNR row 1 of each curve's metrics."""
    out = []
    for cfg in configs:
        held_lp: list[np.ndarray] = []
        held_ps: list[np.ndarray] = []
        worst, recon = 0.0, 0
        for levels in curves.values():
            for c in levels:
                n = c.num_packets
                grid = packet_grid(cfg, n)
                if cfg.loss_patterns > int(c.pattern.max()) + 1:
                    raise ValueError(
                        f"{cfg.label}: the dense curves have only {int(c.pattern.max()) + 1} "
                        "loss patterns per count"
                    )
                js = np.arange(n + 1)
                held = np.setdiff1d(js, grid)
                errs = []
                for row in (0, 1):
                    measured = c.curve(row, cfg.loss_patterns)[grid]
                    errs.append(np.abs(np.interp(js, grid, measured) - c.curve(row)))
                held_lp.append(errs[0][held])
                held_ps.append(errs[1][held])
                worst = max(worst, float(errs[0].max()))
                recon += sum(1 if j in (0, n) else cfg.loss_patterns for j in grid)
        lp, ps = np.concatenate(held_lp), np.concatenate(held_ps)
        out.append(
            GridError(
                cfg,
                recon / max(len(curves), 1),
                float(lp.mean()) if lp.size else 0.0,
                worst,
                float(ps.mean()) if ps.size else 0.0,
            )
        )
    return out


def measure_dense(
    image: Any,
    levels: list[str],
    backend: Any,
    store: Any,
    patterns: int,
    codebook: Any = None,
    params: dict[str, Any] | None = None,
) -> list[DenseCurve]:
    """Dense curves of ``image`` (an ImageRecord) at ``levels``: every count, ``patterns``
    loss patterns each, on ``codebook`` (default: the default codebook, fitted into
    ``store`` on first use) with the vq-mask ``params`` given (default: the defaults)."""
    from aigcsim.models.encoders.raw import measure, metric_reference
    from aigcsim.models.encoders.vq_mask import MEASURE_CHUNK, VQMaskEncoder, VQMaskParams
    from aigcsim.models.pixels import check_pixels
    from aigcsim.models.vq import fill_tokens_batch

    dense = {**(params or {}), "quality_grid": 1_000_000, "loss_patterns": patterns}
    enc = VQMaskEncoder(VQMaskParams(**dense), codebook=codebook)
    cb = enc.codebook(store)
    px = metric_reference(check_pixels(image.pixels), backend)
    h, w = px.shape[:2]
    out = []
    for level in levels:
        plan = enc.plan(image, level, store)
        pats = enc.loss_patterns(plan.num_packets)  # grid index == j: every count
        counts = np.array([j for j, _ in pats])
        pattern = np.zeros_like(counts)
        for j in np.unique(counts):
            pattern[counts == j] = np.arange(int((counts == j).sum()))
        tokens = np.stack([plan.tokens] * len(pats))
        known = np.stack([plan.known(got) for _, got in pats])
        grids = fill_tokens_batch(cb, tokens, known, enc.params.refine_steps)
        scores = np.concatenate(
            [
                measure(px, cb.decode(grids[s : s + MEASURE_CHUNK], h, w), backend)
                for s in range(0, len(grids), MEASURE_CHUNK)
            ],
            axis=1,
        )
        out.append(DenseCurve(counts, pattern, scores))
    return out


def save_curves(path: Path, levels: list[str], curves: list[DenseCurve]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for lv, c in zip(levels, curves, strict=True):
        arrays[lv] = np.concatenate([c.counts[None], c.pattern[None], c.metrics]).astype(float)
    np.savez(path, **arrays)


def load_curves(path: Path) -> list[DenseCurve]:
    with np.load(path) as d:
        return [
            DenseCurve(d[k][0].astype(np.int64), d[k][1].astype(np.int64), d[k][2:])
            for k in d.files
        ]


def format_table(errors: list[GridError]) -> str:
    lines = [
        "| grid | quality_grid | loss_patterns | reconstructions per image | LPIPS abs error, "
        "unmeasured counts: mean | LPIPS abs error, worst (any count) | PSNR abs error, "
        "unmeasured counts: mean, dB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in errors:
        c = e.config
        lines.append(
            f"| {c.spacing} | {c.quality_grid} | {c.loss_patterns} | "
            f"{e.reconstructions_per_image:.0f} | {e.lpips_mean_held_out:.4f} | "
            f"{e.lpips_max:.4f} | {e.psnr_db_mean_held_out:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=DEFAULT_IMAGES, help="builtin image ids")
    ap.add_argument("--metric-max-side", type=int, default=512, help="0: own size")
    ap.add_argument("--patterns", type=int, default=4, help="loss patterns per count")
    ap.add_argument("--save-dir", type=Path, default=None, help="write the dense curves here")
    ap.add_argument("--load-dir", type=Path, default=None, help="read dense curves from here")
    args = ap.parse_args()
    curves: dict[str, list[DenseCurve]] = {}
    wanted = args.images.split(",")
    if args.load_dir is not None:
        for image_id in wanted:
            curves[image_id] = load_curves(args.load_dir / f"{image_id.replace('/', '_')}.npz")
    else:
        import torch

        from aigcsim.models.backends.offline import OfflineBackend
        from aigcsim.models.cache import Cache
        from aigcsim.models.encoders.vq_mask import DEFAULT_LEVELS
        from aigcsim.models.images import load_builtin

        torch.set_num_threads(1)
        backend = OfflineBackend(metric_max_side=args.metric_max_side or None)
        images = {im.image_id: im for im in load_builtin() if im.image_id in wanted}
        missing = set(wanted) - set(images)
        if missing:
            raise SystemExit(f"not builtin images: {', '.join(sorted(missing))}")
        with tempfile.TemporaryDirectory() as tmp, Cache(Path(tmp) / "store.sqlite") as store:
            for image_id in wanted:
                t0 = time.process_time()
                levels = list(DEFAULT_LEVELS)
                curves[image_id] = measure_dense(
                    images[image_id], levels, backend, store, args.patterns
                )
                if args.save_dir is not None:
                    args.save_dir.mkdir(parents=True, exist_ok=True)
                    name = image_id.replace("/", "_") + ".npz"
                    save_curves(args.save_dir / name, levels, curves[image_id])
                n = sum(c.counts.size for c in curves[image_id])
                print(
                    f"{image_id}: {n} reconstructions, {time.process_time() - t0:.0f} CPU-s "
                    f"(load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    side = f"longer side <= {args.metric_max_side} px" if args.metric_max_side else "own size"
    print(
        f"\n{len(curves)} images ({', '.join(curves)}), 5 levels each, metrics at {side}, "
        f"dense reference: every count, {args.patterns} loss patterns\n"
    )
    print(format_table(grid_errors(curves)))


if __name__ == "__main__":
    main()
