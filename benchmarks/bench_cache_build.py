"""Seconds per image per encoder family of an offline cache build (warm models).

Builds ``--families`` for ``--images`` builtin photographs into a copy of the shipped
default cache from which those photographs' entries and model outputs are deleted,
except the vq-mask codebook (fitted once per cache, about 12 CPU-s, not per image), so
every entry is computed as for a user's new photo. The models are loaded before timing.
Prints CPU seconds (this process, ``--threads`` torch threads, default one) and wall
seconds per image per family, with the machine's load average before and after each family
(CPU seconds are what to compare between runs on a shared machine; wall seconds follow the
load). The cost of scoring grows with the photographs' pixel count (the images' megapixels
are printed): ``--metric-max-side N`` scores them at a longer side of at most ``N`` px
(the offline backend's ``metric_max_side``; a folder build's default is 512). ``--images
all`` takes the whole catalogue.

    python benchmarks/bench_cache_build.py             # README per-family table, own size
    python benchmarks/bench_cache_build.py --images all --metric-max-side 512 \
        --families jpeg,raw,vq-mask,seq-words          # the same at the folder default
    python benchmarks/bench_cache_build.py --images all --families vq-mask \
        --encoder-param vq-mask.grid_spacing=linear --encoder-param vq-mask.loss_patterns=4
    python benchmarks/bench_cache_build.py --classifier   # EfficientNet alone, ms per image
    python benchmarks/bench_cache_build.py --export-catalogue photos/   # a folder to build
    python benchmarks/bench_cache_build.py --export-catalogue photos26/ --mirror   # 26
    python benchmarks/bench_cache_build.py --compare-shipped photos.sqlite

``--export-catalogue DIR`` writes the 13 catalogue photos as PNG (same pixels, so the
same sha256) with their ``captions.json``: a folder for the README's ``aigcsim cache build
--images DIR`` timing. ``--compare-shipped CACHE`` compares a cache built from such a
folder with the shipped one, photo by photo (matched by pixel sha256): per measured family
the mean and largest absolute LPIPS difference after ``k = 1..n`` units, for the photos
that moved (a
folder build scores photos above 512 px at 512) and the largest difference of every
metric over the photos that did not.

``--classifier`` times only the task classifier on the catalogue's photos and their JPEG
(q=5..40) and noisy versions (91 inputs at 224 px): the package's model in batches of 16
(the earlier path) and of 4, and the batch-norm-folded model the build runs
(:class:`aigcsim.models.backends.classifier.FusedEfficientNetLite`) in batches of 4, 8 and
16, alternated ``--repeats`` times in one process, CPU ms per image; it also prints the
largest logit difference and whether every top-1 class agrees.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

DEFAULT_IMAGES = "skimage/chelsea,skimage/colorwheel,skimage/coffee,skimage/astronaut"
DEFAULT_FAMILIES = "jpeg,raw,vq-mask,seq-words,cross-attn"


def main() -> None:
    import torch

    from aigcsim.models.backends.offline import OfflineBackend
    from aigcsim.models.build import build_cache, expand_encoders
    from aigcsim.models.default_cache import DEFAULT_CACHE_PATH
    from aigcsim.models.images import load_builtin

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=DEFAULT_IMAGES, help="builtin image ids")
    ap.add_argument("--families", default=DEFAULT_FAMILIES, help="encoder families")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument(
        "--metric-max-side", type=int, default=None, help="score at this longer side, px"
    )
    ap.add_argument(
        "--encoder-param",
        action="append",
        default=[],
        help="family.key=value, as for aigcsim cache build (repeatable)",
    )
    ap.add_argument("--classifier", action="store_true", help="time the classifier only")
    ap.add_argument("--repeats", type=int, default=3, help="--classifier: alternated repeats")
    ap.add_argument("--export-catalogue", type=Path, default=None, help="write PNGs here")
    ap.add_argument("--mirror", action="store_true", help="--export-catalogue: add mirrors")
    ap.add_argument("--compare-shipped", type=Path, default=None, help="a folder-built cache")
    args = ap.parse_args()
    if args.export_catalogue is not None:
        export_catalogue(args.export_catalogue, args.mirror)
        return
    if args.compare_shipped is not None:
        compare_shipped(args.compare_shipped)
        return
    if args.classifier:
        torch.set_num_threads(args.threads)
        bench_classifier(args.repeats)
        return
    from aigcsim.cli.cache import encoder_params

    enc_params = encoder_params(args.encoder_param)
    torch.set_num_threads(args.threads)
    wanted = args.images.split(",")
    images = [im for im in load_builtin() if args.images == "all" or im.image_id in wanted]
    backend = OfflineBackend(metric_max_side=args.metric_max_side)
    px = images[0].pixels
    backend.lpips(px, px[None]), backend.top1(px[None]), backend.content_words("a cat")
    backend.word_attention(["a", "cat"])
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.sqlite"
        shutil.copy(DEFAULT_CACHE_PATH, cache)
        con = sqlite3.connect(cache)
        with con:
            for im in images:
                con.execute(
                    "DELETE FROM model_outputs WHERE image_sha256=? AND kind != 'vq-codebook'",
                    (im.sha256,),
                )
                con.execute("DELETE FROM cache_entries WHERE image_id=?", (im.image_id,))
        con.close()
        mpx = [im.pixels.shape[0] * im.pixels.shape[1] / 1e6 for im in images]
        print(
            f"{len(images)} images ({sum(mpx) / len(mpx):.2f} Mpx mean): "
            + ", ".join(f"{im.image_id} {m:.2f}" for im, m in zip(images, mpx, strict=True))
            + f"; torch threads {args.threads}, metric_max_side {args.metric_max_side}"
            + (f", encoder params {enc_params}" if enc_params else "")
        )
        for family in args.families.split(","):
            specs = expand_encoders(family)
            load_before = os.getloadavg()[0]
            t, c = time.perf_counter(), time.process_time()
            params = {f: p for f, p in enc_params.items() if f == family}
            report = build_cache(images, specs, backend, cache, encoder_params=params)
            cpu, wall = time.process_time() - c, time.perf_counter() - t
            print(
                f"{family}: {len(specs)} levels, {report.computed} entries, "
                f"{cpu / len(images):.1f} CPU-s and {wall / len(images):.1f} s wall per image"
                + (f", {len(report.failed)} not available" if report.failed else "")
                + f" (load {load_before:.1f} -> {os.getloadavg()[0]:.1f})"
            )


def export_catalogue(folder: Path, mirror: bool = False) -> None:
    """The catalogue photos as ``folder/<source>_<name>.png`` plus ``captions.json``;
    with ``mirror`` also each one flipped left to right (``flip_<...>.png``, same caption):
    twice the photos, all distinct."""
    import json

    from PIL import Image

    from aigcsim.models.images import load_builtin

    folder.mkdir(parents=True, exist_ok=True)
    captions = {}
    for im in load_builtin():
        name = im.image_id.replace("/", "_") + ".png"
        Image.fromarray(im.pixels).save(folder / name)
        captions[name] = im.caption
        if mirror:
            Image.fromarray(im.pixels[:, ::-1].copy()).save(folder / f"flip_{name}")
            captions[f"flip_{name}"] = im.caption
    (folder / "captions.json").write_text(json.dumps(captions, indent=1))
    print(f"{len(captions)} photos and captions.json in {folder}")


def compare_shipped(path: Path) -> None:
    """LPIPS (and every metric) of a folder-built cache against the shipped one."""
    import numpy as np

    from aigcsim.models.cache import Cache
    from aigcsim.models.default_cache import DEFAULT_CACHE_PATH
    from aigcsim.models.optable import load_table

    def shas(p: Path) -> dict[str, str]:
        with Cache(p, read_only=True) as c:
            rows = c.con.execute("SELECT image_id, sha256 FROM op_images").fetchall()
        return {sha: image_id for image_id, sha in rows}

    every = load_table(path)
    measured = [
        e
        for j, e in enumerate(every.encoder_ids)
        if not every.synthetic[:, j].any() and e in load_table(DEFAULT_CACHE_PATH).encoder_ids
    ]
    built, ship = load_table(path, measured), load_table(DEFAULT_CACHE_PATH, measured)
    by_sha_built, by_sha_ship = shas(path), shas(DEFAULT_CACHE_PATH)
    encoders = measured
    moved: dict[str, list[tuple[str, float, float]]] = {}
    still: dict[str, float] = {}
    for sha, image_id in by_sha_built.items():
        if sha not in by_sha_ship or image_id not in built.image_ids:
            continue
        i, k = built.image_ids.index(image_id), ship.image_ids.index(by_sha_ship[sha])
        for e in encoders:
            j, sj = built.encoder_index(e), ship.encoder_index(e)
            n = int(built.num_units[i, j])
            if n != int(ship.num_units[k, sj]):
                raise SystemExit(f"{image_id} {e}: {n} units against {ship.num_units[k, sj]}")
            d = np.abs(
                built.quality["lpips"][i, j, 1 : n + 1] - ship.quality["lpips"][k, sj, 1 : n + 1]
            )
            if d.max() > 1e-4:
                moved.setdefault(e.split("/")[0], []).append((image_id, d.mean(), d.max()))
            else:
                for m in ship.quality:
                    if m in built.quality:
                        a = built.quality[m][i, j, 1 : n + 1] - ship.quality[m][k, sj, 1 : n + 1]
                        still[m] = max(still.get(m, 0.0), float(np.nanmax(np.abs(a))))
    for family, rows in sorted(moved.items()):
        photos = sorted({r[0] for r in rows})
        print(
            f"{family}: {len(photos)} photos moved, |LPIPS difference| mean "
            f"{np.mean([r[1] for r in rows]):.4f}, largest {max(r[2] for r in rows):.4f}"
        )
    print("entries that did not move, largest difference per metric:", still)


def bench_classifier(repeats: int) -> None:
    """CPU ms per image of the package EfficientNet-lite0 and the fused one (see above)."""
    import numpy as np
    import torch

    from aigcsim.models.backends.classifier import ImageNetClassifier, preprocess
    from aigcsim.models.encoders.jpeg import jpeg_roundtrip
    from aigcsim.models.images import load_builtin

    rng = np.random.default_rng(0)
    inputs = []
    for im in load_builtin():
        px = im.pixels
        inputs += [jpeg_roundtrip(px, q)[1] for q in (5, 10, 20, 40)]
        inputs += [
            np.clip(px.astype(np.int16) + rng.integers(-s, s, px.shape), 0, 255).astype(np.uint8)
            for s in (10, 40, 80)
        ]
    x = torch.cat([preprocess(i[None]) for i in inputs])
    clf = ImageNetClassifier()
    runs = [
        ("package model, batches of 16", clf.model, 16),
        ("package model, batches of 4", clf.model, 4),
        ("fused, batches of 4 (the build's)", clf.fused, 4),
        ("fused, batches of 8", clf.fused, 8),
        ("fused, batches of 16", clf.fused, 16),
    ]
    ms: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    with torch.no_grad():
        ref = torch.cat([clf.model(x[s : s + 16]) for s in range(0, len(x), 16)])
        got = torch.cat([clf.fused(x[s : s + 4]) for s in range(0, len(x), 4)])
        for _ in range(repeats):
            for name, model, bs in runs:
                c = time.process_time()
                for s in range(0, len(x), bs):
                    model(x[s : s + bs])
                ms[name].append((time.process_time() - c) / len(x) * 1e3)
    same = int((got.argmax(1) == ref.argmax(1)).sum())
    print(
        f"{len(x)} inputs; fused vs package: max |logit difference| "
        f"{float((got - ref).abs().max()):.2e}, same top-1 class {same}/{len(x)}"
    )
    for name, values in ms.items():
        print(f"{name}: {', '.join(f'{v:.1f}' for v in values)} CPU ms per image")
    print(f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
