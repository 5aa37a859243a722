"""Ray helpers shared by sweeps and parallel cache builds: import Ray with a clear
message when it is missing, join a cluster or start a local instance, and fail fast
when nothing listens at a cluster address."""

from __future__ import annotations

import logging
import socket
from typing import Any

from aigcsim.kernel.registry import UserInputError


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserInputError(
            "the ray backend needs Ray, which is not installed: "
            "pip install 'aigcsim[scale]' (or pip install 'ray>=2.9'), or use --backend local"
        ) from None
    return ray


def init_ray(workers: int, address: str | None) -> bool:
    """Join the cluster at ``address`` or start a local instance with ``workers`` CPUs;
    returns True if this call started Ray (and so should shut it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(num_cpus=workers, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"join the Ray cluster at '{address}'" if address else "start a local Ray instance"
        hint = (
            " If the cluster uses token authentication (the default for clusters started "
            "by Ray >= 2.59), give this process its token: set RAY_AUTH_TOKEN, or put it in "
            "~/.ray/auth_token ('ray get-auth-token' on the head node prints it)."
            if address
            else ""
        )
        raise UserInputError(f"cannot {where}: {exc}.{hint}") from None
    return True


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with a clear message, when nothing accepts connections at ``address``
    (``host:port`` of a Ray head's GCS); Ray itself would retry for minutes.

    ``ray://`` client addresses and ``auto`` are left to Ray.
    """
    if address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserInputError(
            f"--address: expected HOST:PORT of a Ray head node (e.g. 10.0.0.5:6379), "
            f"'auto', or a ray:// address; got '{address}'"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserInputError(
            f"cannot join the Ray cluster at '{address}': nothing accepts connections there "
            f"({exc.strerror or exc}). Start a head node with 'ray start --head --port={port}' "
            "or check the address."
        ) from None
