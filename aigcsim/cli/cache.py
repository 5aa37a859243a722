"""``aigcsim cache build|info|export``: build and inspect per-image model caches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

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

cache_app = typer.Typer(help="Build and inspect per-image model caches.", no_args_is_help=True)


@cache_app.command("build")
def build(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="cache file (.sqlite), created or resumed")
    ],
    images: Annotated[str, typer.Option(help="'builtin' or a folder of images")] = "builtin",
    encoders: Annotated[
        str, typer.Option(help="comma-separated families or family/level ids")
    ] = "jpeg,raw,vq-mask,seq-words",
    backend: Annotated[str, typer.Option(help="offline | diffusers")] = "offline",
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
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
        str,
        typer.Option(
            help="where entries are computed: serial (this process) | local (process "
            "pool) | ray (one Ray task per batch of images); the cache is written here"
        ),
    ] = "serial",
    workers: Annotated[int, typer.Option(help="parallel tasks for --executor local|ray")] = 2,
    address: Annotated[
        str | None, typer.Option(help="join this Ray cluster (--executor ray), e.g. auto")
    ] = None,
    batch_images: Annotated[
        int | None, typer.Option(help="images per task (default: 2 tasks per worker)")
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Compute every missing (image, encoder) entry; rerun to resume after a crash."""
    from aigcsim.models.backends.registry import BACKENDS
    from aigcsim.models.build import build_cache, expand_encoders
    from aigcsim.models.images import Skipped, load_builtin, load_folder

    console = Console(stderr=True)
    specs = expand_encoders(encoders)
    from aigcsim.kernel.registry import UserInputError, suggest
    from aigcsim.models.build_parallel import EXECUTORS

    settings = backend_settings(device, backend_config, backend_param)
    if executor not in EXECUTORS:
        raise UserInputError(
            f"unknown --executor '{executor}'.{suggest(executor, EXECUTORS)} "
            f"Executors: {', '.join(EXECUTORS)}."
        )
    if executor == "serial" and address is not None:
        raise UserInputError("--address joins a Ray cluster; it needs --executor ray")
    be = BACKENDS.build(backend, settings) if executor == "serial" else None
    skipped: list[Skipped] = []
    records = list(load_builtin(skipped) if images == "builtin" else load_folder(images, skipped))
    for s in skipped:
        console.print(f"skipped image {s.name}: {s.reason}", markup=False)
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
    )
    with bar:
        task = bar.add_task("cache build", total=total)
        advance = lambda desc, n: bar.update(task, advance=n, description=desc[:40])  # noqa: E731
        if be is not None:
            report = build_cache(records, specs, be, out, progress=advance)
        else:
            from aigcsim.models.build_parallel import build_cache_parallel

            report = build_cache_parallel(
                records,
                specs,
                backend,
                settings,
                out,
                executor=executor,
                workers=workers,
                address=address,
                batch_images=batch_images,
                progress=advance,
            )
    for image_id, enc, why in report.failed:
        console.print(f"not built: {image_id} {enc}: {why}", markup=False)
    print(
        f"{out}: {report.computed} entries computed, {report.reused} reused, "
        f"{len(report.failed)} not available, {len(skipped)} images skipped, "
        f"{report.seconds:.1f} s ({report.seconds / max(report.images, 1):.2f} s per image)"
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


@cache_app.command("info")
def info(
    cache: Annotated[Path, typer.Argument(help="cache file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Images, encoders, provenance, measured vs synthetic entries."""
    from aigcsim.models.cache import Cache

    with Cache(cache, read_only=True) as c:
        data = c.info()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    console = Console()
    console.print(
        f"{data['path']}: {data['images']} images, {data['entries']} entries "
        f"({data['measured_entries']} measured, {data['synthetic_entries']} SYNTHETIC), "
        f"{data['model_outputs']} stored model outputs",
        markup=False,
    )
    t = Table("encoder", "entries", "measured", "synthetic", "backend", "code")
    for enc, e in data["encoders"].items():
        prov = e["provenance"]
        t.add_row(
            enc,
            str(e["entries"]),
            str(e["measured_entries"]),
            str(e["synthetic_entries"]),
            str(prov.get("backend", "?")),
            str(prov.get("code_version", "?")),
        )
    console.print(t)


@cache_app.command("export")
def export(
    cache: Annotated[Path, typer.Argument(help="cache file")],
    parquet: Annotated[Path, typer.Option("--parquet", help="output parquet file")],
) -> None:
    """Export operating points as tidy parquet (one row per image, encoder, k)."""
    from aigcsim.models.cache import export_parquet

    n = export_parquet(cache, parquet)
    print(f"wrote {n} rows to {parquet}")
