"""Loading pretrained models by hub id or local folder, with clear errors and provenance.

Every model of the ``diffusers`` backend is loaded through :func:`load_pretrained`,
which calls the class's own ``from_pretrained(id_or_path, local_files_only=...)``.
When the weights are absent (no internet, ``local_files_only``, a wrong path) the
error is a :class:`~aigcsim.kernel.registry.UserInputError` naming the model, the setting to
change and three ways to provide the weights. :func:`describe_model` records what was
(or will be) loaded, without loading it: a hub id with the commit hash of the locally
cached snapshot, or a local folder with a hash of its config files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from aigcsim.kernel.registry import UserInputError

T = TypeVar("T")

CONFIG_FILES = ("model_index.json", "config.json", "preprocessor_config.json")
"""Files whose contents identify a local model folder (weights are not hashed: too big)."""


def is_local(id_or_path: str) -> bool:
    """True if ``id_or_path`` names an existing local folder."""
    return Path(id_or_path).expanduser().is_dir()


def looks_like_path(id_or_path: str) -> bool:
    """True for strings that can only be a filesystem path (not an ``org/name`` hub id)."""
    p = id_or_path.strip()
    return (
        p.startswith(("/", "./", "../", "~", "\\"))
        or p.count("/") > 1
        or (len(p) > 1 and p[1] == ":")
    )


def missing_weights_message(
    role: str,
    id_or_path: str,
    setting: str,
    local_files_only: bool,
    cause: str,
    default_id: str | None = None,
) -> str:
    """The one-paragraph error shown when a model cannot be loaded."""
    if is_local(id_or_path) or looks_like_path(id_or_path):
        where = f"the local folder '{id_or_path}'"
        if not is_local(id_or_path):
            cause = "the folder does not exist"
        source = default_id or "ORG/NAME"
    else:
        where = f"'{id_or_path}' (hub id)"
        source = id_or_path
    offline = " with local_files_only=true" if local_files_only else ""
    first = cause.strip().splitlines()[0].rstrip(".") if cause.strip() else "not found"
    return (
        f"could not load the {role} model from {where}{offline} (backend setting "
        f"'{setting}'): {first}. Provide the weights in one of these ways: (1) on a machine "
        f"with internet, run 'huggingface-cli download {source} --local-dir DIR' (or "
        f"'hf download'), copy DIR here and pass '--backend-param {setting}=DIR'; (2) set "
        f"'--backend-param local_files_only=false' to download it from the Hugging Face hub "
        f"on a machine that reaches it; (3) point '{setting}' at any folder written by "
        f"save_pretrained() of a compatible model."
    )


def load_pretrained(
    loader: Callable[..., T],
    id_or_path: str,
    *,
    role: str,
    setting: str,
    local_files_only: bool,
    revision: str | None = None,
    default_id: str | None = None,
    **kwargs: Any,
) -> T:
    """``loader(id_or_path, local_files_only=..., revision=..., **kwargs)`` with clear errors.

    Args:
        loader: a ``from_pretrained`` classmethod (diffusers or transformers).
        id_or_path: hub id (``org/name``) or local folder.
        role: what the model is for, for messages (``"text-to-image"``).
        setting: the backend setting that holds ``id_or_path`` (``"text_to_image"``).
        local_files_only: never touch the network.
        revision: hub branch, tag or commit (ignored for local folders).
        default_id: hub id suggested in the error when ``id_or_path`` is a missing folder.

    Raises:
        UserInputError: the model's files are missing or unreadable.
    """
    if looks_like_path(id_or_path) and not is_local(id_or_path):
        raise UserInputError(
            missing_weights_message(role, id_or_path, setting, local_files_only, "", default_id)
        )
    if revision is not None and not is_local(id_or_path):
        kwargs["revision"] = revision
    target = str(Path(id_or_path).expanduser()) if is_local(id_or_path) else id_or_path
    try:
        with quiet_loading():
            return loader(target, local_files_only=local_files_only, **kwargs)
    except (OSError, ValueError) as exc:  # hub/transformers/diffusers "not found" errors
        raise UserInputError(
            missing_weights_message(
                role, id_or_path, setting, local_files_only, str(exc), default_id
            )
        ) from None


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No progress bars or info logs from transformers/diffusers while loading (cache-build
    logs stay readable); warnings and errors still show."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    levels = (tlog.get_verbosity(), dlog.get_verbosity())
    bars = (tlog.is_progress_bar_enabled(), dlog.is_progress_bar_enabled())
    tlog.set_verbosity_error()  # type: ignore[no-untyped-call]
    dlog.set_verbosity_error()
    tlog.disable_progress_bar()  # type: ignore[no-untyped-call]
    dlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(levels[0])
        dlog.set_verbosity(levels[1])
        if bars[0]:
            tlog.enable_progress_bar()  # type: ignore[no-untyped-call]
        if bars[1]:
            dlog.enable_progress_bar()


def _snapshot_commit(repo_id: str, revision: str | None) -> str | None:
    """Commit hash of ``repo_id``'s snapshot in the local hub cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    for filename in CONFIG_FILES:
        try:
            found = try_to_load_from_cache(repo_id, filename, revision=revision)
        except ValueError:  # not a valid repo id
            return None
        if isinstance(found, str):
            parts = Path(found).parts
            if "snapshots" in parts:
                return parts[parts.index("snapshots") + 1]
    return None


def describe_model(id_or_path: str, revision: str | None = None) -> str:
    """Provenance of a model without loading it.

    Local folder: ``local:<absolute path> config-sha256:<12 hex>`` (hash of its config
    files, recursively). Hub id: ``<id>@<commit>`` when a snapshot is in the local hub
    cache, else ``<id>@<revision or main> (not in the local hub cache)``.
    """
    if looks_like_path(id_or_path) and not is_local(id_or_path):
        return f"local:{id_or_path} (missing)"
    if is_local(id_or_path):
        root = Path(id_or_path).expanduser().resolve()
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*.json") if p.name in CONFIG_FILES):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
        return f"local:{root} config-sha256:{digest.hexdigest()[:12]}"
    commit = _snapshot_commit(id_or_path, revision)
    if commit is not None:
        return f"{id_or_path}@{commit}"
    return f"{id_or_path}@{revision or 'main'} (not in the local hub cache)"
