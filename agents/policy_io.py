"""Saving and loading trained allocation policies without ever executing code from a file.

A policy directory (written by ``aigcsim train``) holds

* ``policy.json``: what to rebuild: the agent, the network class (a name from
  :data:`NETWORKS`, never an import path), its keyword arguments (numbers, strings and
  names from :data:`EXTRACTORS` / :data:`ACTIVATIONS`), the observation/action layout and
  the env settings the policy was trained with (``format`` = :data:`POLICY_FORMAT`);
* ``policy.safetensors``: the network's parameters (a safetensors file holds raw
  tensors and a JSON header, nothing executable).

:func:`load_policy_network` rebuilds the network from ``policy.json`` and loads only the
tensors. Nothing goes through pickle: not SB3's ``load`` (which unpickles parts of a
``model.zip`` with cloudpickle), not ``torch.load``. Directories from older versions
(format 1: a pickled SB3 / ADD ``model.zip``) are refused with a message. SB3 files
that ``aigcsim train`` writes while training (``checkpoints/*.zip``,
``best/best_model.zip``) are pickles too; to use one as a policy, convert it on purpose,
for a file you trust::

    python -m aigcsim.agents.policy_io convert OUT/best/best_model.zip --like OUT --out DIR

which loads it with SB3 (this *does* unpickle) and writes a safe directory ``DIR``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from aigcsim.kernel.registry import UserInputError, suggest

POLICY_FORMAT = 2
"""Version of the policy directory layout (1: pickled ``model.zip``; 2: safetensors)."""
INFO_FILE = "policy.json"
WEIGHTS_FILE = "policy.safetensors"
MAX_INFO_BYTES = 1_000_000

NETWORKS: tuple[str, ...] = ("user-set-ac", "multi-input-ac", "sac", "td3", "add")
"""Network classes a policy directory may name."""
EXTRACTORS: tuple[str, ...] = ("user-set", "combined")
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh", "mish", "elu")


class PolicyFileError(UserInputError):
    """A policy directory that cannot be loaded safely (missing, old or malformed)."""


# ------------------------------------------------------------------ describing networks
def _class_maps() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy
    from stable_baselines3.common.torch_layers import CombinedExtractor
    from stable_baselines3.sac.policies import MultiInputPolicy as SACPolicy
    from stable_baselines3.td3.policies import MultiInputPolicy as TD3Policy
    from torch import nn

    from aigcsim.agents.features import UserSetActorCriticPolicy, UserSetExtractor

    networks = {
        "user-set-ac": UserSetActorCriticPolicy,
        "multi-input-ac": MultiInputActorCriticPolicy,
        "sac": SACPolicy,
        "td3": TD3Policy,
    }
    extractors = {"user-set": UserSetExtractor, "combined": CombinedExtractor}
    activations = {"relu": nn.ReLU, "tanh": nn.Tanh, "mish": nn.Mish, "elu": nn.ELU}
    return networks, extractors, activations


def _name_of(value: Any, table: dict[str, Any], what: str) -> str:
    for name, cls in table.items():
        if value is cls:
            return name
    raise ValueError(f"{what} {value!r} cannot be saved (allowed: {', '.join(table)})")


def describe_sb3(model: Any) -> dict[str, Any]:
    """``{"network": name, "kwargs": {...}}`` of an SB3 model's policy (JSON-ready)."""
    networks, extractors, activations = _class_maps()
    policy = model.policy
    network = _name_of(type(policy), networks, "policy class")
    saved = policy._get_constructor_parameters()
    keep = (
        "net_arch",
        "log_std_init",
        "use_sde",
        "squash_output",
        "share_features_extractor",
        "n_critics",
        "embed_dim",
        "hidden_dim",
        "per_user",
        "ortho_init",
        "normalize_images",
        "full_std",
        "use_expln",
    )
    kwargs: dict[str, Any] = {k: saved[k] for k in keep if k in saved}
    if network == "user-set-ac":
        kwargs |= {
            "embed_dim": policy._embed_dim,
            "hidden_dim": policy._hidden_dim,
            "per_user": policy._per_user,
        }
        kwargs.pop("net_arch", None)
    if "activation_fn" in saved:
        kwargs["activation_fn"] = _name_of(saved["activation_fn"], activations, "activation")
    if "features_extractor_class" in saved:
        kwargs["features_extractor_class"] = _name_of(
            saved["features_extractor_class"], extractors, "features extractor"
        )
        kwargs["features_extractor_kwargs"] = dict(saved.get("features_extractor_kwargs") or {})
    json.dumps(kwargs)  # raises if something is not plain data
    return {"network": network, "kwargs": kwargs}


def build_sb3_policy(description: dict[str, Any], observation_space: Any, action_space: Any) -> Any:
    """An SB3 policy rebuilt from :func:`describe_sb3`'s output (random weights)."""
    networks, extractors, activations = _class_maps()
    network = str(description.get("network"))
    if network not in networks:
        raise PolicyFileError(
            f"policy network '{network}' is not one aigcsim builds."
            f"{suggest(network, list(networks))} "
            f"Valid: {', '.join(networks)}."
        )
    kwargs = dict(description.get("kwargs") or {})
    if "activation_fn" in kwargs:
        kwargs["activation_fn"] = _lookup(kwargs["activation_fn"], activations, "activation_fn")
    if "features_extractor_class" in kwargs:
        kwargs["features_extractor_class"] = _lookup(
            kwargs["features_extractor_class"], extractors, "features_extractor_class"
        )
    try:
        return networks[network](observation_space, action_space, lambda _p: 0.0, **kwargs)
    except TypeError as exc:
        raise PolicyFileError(f"policy.json: bad network settings for '{network}': {exc}") from None


def _lookup(name: Any, table: dict[str, Any], key: str) -> Any:
    if not isinstance(name, str) or name not in table:
        shown = repr(name)[:60]
        raise PolicyFileError(f"policy.json: {key} {shown} is not one of {', '.join(table)}")
    return table[name]


# ------------------------------------------------------------------ saving
def policy_state(model: Any) -> tuple[dict[str, Any], Any]:
    """``(network description, torch module to save)`` of an SB3 model or an ADD agent."""
    from dataclasses import asdict

    from torch import nn

    if type(model).__name__ == "ADD":
        config = asdict(model.config)
        config["hidden"] = list(config["hidden"])
        description = {
            "network": "add",
            "kwargs": {"config": config, "n_features": model.n_features},
        }
        # the critic is kept for diagnostics (analysis/repro/add_vs_drl.py)
        return description, nn.ModuleDict({"actor": model.actor, "critic": model.critic})
    return describe_sb3(model), model.policy


def save_policy(model: Any, out_dir: Path, info: dict[str, Any]) -> None:
    """Write ``policy.safetensors`` and ``policy.json`` (``info`` + the network) to ``out_dir``.

    Parameters shared between submodules (SB3 aliases its features extractor) are
    stored once (``safetensors.torch.save_model``)."""
    from safetensors.torch import save_model

    description, module = policy_state(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(module, str(out_dir / WEIGHTS_FILE))
    full = {"format": POLICY_FORMAT} | info | {"policy": description}
    (out_dir / INFO_FILE).write_text(json.dumps(full, indent=2) + "\n")


# ------------------------------------------------------------------ loading
def read_policy_info(path: str | Path) -> dict[str, Any]:
    """``policy.json`` of a policy directory, checked; anything wrong raises
    :class:`PolicyFileError` (a :class:`UserInputError`) naming the file."""
    d = Path(path)
    if not d.is_dir():
        raise PolicyFileError(f"policy directory '{d}' not found (create one with aigcsim train)")
    info_path = d / INFO_FILE
    if not info_path.is_file():
        raise PolicyFileError(f"policy directory '{d}' has no {INFO_FILE}")
    raw = info_path.read_bytes()[: MAX_INFO_BYTES + 1]
    if len(raw) > MAX_INFO_BYTES:
        raise PolicyFileError(f"'{info_path}' is larger than {MAX_INFO_BYTES} bytes")
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyFileError(f"cannot read '{info_path}': {str(exc)[:120]}") from None
    if not isinstance(info, dict):
        raise PolicyFileError(f"'{info_path}' must hold a JSON object")
    fmt = info.get("format")
    if fmt != POLICY_FORMAT:
        raise PolicyFileError(
            f"'{d}' is not a safe policy directory (format {str(fmt)[:20]!r}, expected "
            f"{POLICY_FORMAT}): aigcsim never unpickles policy files, since unpickling can "
            f"run code.\nRetrain it with 'aigcsim train' (format-1 policies were trained for "
            f"the earlier env observation), or convert an SB3 .zip you trust: "
            f"python -m aigcsim.agents.policy_io convert MODEL.zip --like TRAIN_DIR --out DIR"
        )
    missing = [k for k in ("agent", "max_users", "policy", "env") if k not in info]
    if missing:
        raise PolicyFileError(f"'{info_path}' lacks {', '.join(missing)}")
    if not (d / WEIGHTS_FILE).is_file():
        raise PolicyFileError(f"policy directory '{d}' has no {WEIGHTS_FILE}")
    return info


def _load_weights(module: Any, path: Path, info_path: Path) -> None:
    """Load ``path`` (safetensors) into ``module``, strictly; errors name the files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        missing, unexpected = load_model(module, str(path), strict=False, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise PolicyFileError(
            f"'{path}' is not a valid safetensors file: {str(exc)[:160]}"
        ) from None
    except RuntimeError as exc:
        raise PolicyFileError(
            f"'{path}' does not fit the network of '{info_path}': {str(exc).splitlines()[0][:200]}"
        ) from None
    if missing or unexpected:
        raise PolicyFileError(
            f"'{path}' does not fit the network of '{info_path}': missing "
            f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
        )


def policy_spaces(info: dict[str, Any]) -> tuple[Any, Any]:
    """The observation and action spaces a policy of ``info`` was trained on."""
    from gymnasium import spaces

    from aigcsim.agents.envs.spaces import action_space, observation_space

    m = int(info["max_users"])
    env = info["env"]
    obs = observation_space(m, int(env.get("num_features", 0)) or _default_features())
    levels = env.get("levels")
    if levels:
        obs = spaces.Dict(
            {**obs.spaces, "levels": spaces.Box(0.0, 1.0, shape=(m,), dtype=np.float32)}
        )
    act = action_space(m, bool(env.get("idle", False)), per_user=int(env.get("per_user", 1)))
    return obs, act


def _default_features() -> int:
    """Columns of a policy that does not record ``num_features`` (one from before the
    ``encoder`` column: :data:`~aigcsim.agents.envs.spaces.FEATURES_V0`)."""
    from aigcsim.agents.envs.spaces import FEATURES_V0

    return len(FEATURES_V0)


def load_policy_network(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """``(network, info)``: the policy of a directory, rebuilt and with its weights.

    ``network.predict(obs, deterministic=...)`` returns ``(action, None)`` like SB3.
    """
    from torch import nn

    d = Path(path)
    info = read_policy_info(d)
    description = info["policy"]
    if not isinstance(description, dict):
        raise PolicyFileError(f"'{d / INFO_FILE}': 'policy' must be an object")
    obs_space, act_space = policy_spaces(info)
    if description.get("network") == "add":
        from aigcsim.agents.add import ADD, ADDConfig

        kwargs = description.get("kwargs") or {}
        try:
            config = ADDConfig(**kwargs.get("config", {}))
        except (TypeError, ValueError) as exc:
            raise PolicyFileError(f"'{d / INFO_FILE}': bad ADD config: {exc}") from None
        model = ADD(
            None,
            config,
            device="cpu",
            max_users=int(info["max_users"]),
            n_features=int(kwargs.get("n_features", 0)) or None,
        )
        module = nn.ModuleDict({"actor": model.actor, "critic": model.critic})
        _load_weights(module, d / WEIGHTS_FILE, d / INFO_FILE)
        return model, info
    policy = build_sb3_policy(description, obs_space, act_space)
    _load_weights(policy, d / WEIGHTS_FILE, d / INFO_FILE)
    policy.set_training_mode(False)
    return policy, info


# ------------------------------------------------------------------ explicit conversion
def convert(model_zip: Path, like: Path, out: Path) -> Path:
    """Write a safe policy directory ``out`` from a TRUSTED SB3 ``.zip`` (unpickles it!),
    or from an ADD checkpoint ``.zip`` (:meth:`aigcsim.agents.add.ADD.load`: weights only).

    ``like``: a format-2 policy directory of the same training run, whose
    ``policy.json`` (env settings, agent) is copied.
    """
    info = read_policy_info(like)
    from aigcsim.agents.sb3_training import DRL_BASELINES, agent_kind

    agent = str(info["agent"])
    kind = agent_kind(agent) if agent in (*DRL_BASELINES, "add") else None
    if kind is None:
        raise PolicyFileError(
            f"convert handles SB3 agents ({', '.join(DRL_BASELINES)}) and add, not '{agent}'"
        )
    try:  # SB3: a trusted file, unpickled; ADD: weights only (ADD.load), never runs code
        model = kind.model_class().load(model_zip, device="cpu")
    except (ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
        raise PolicyFileError(f"cannot convert '{model_zip}': {exc}") from None
    out = Path(out)
    if out.exists():
        raise PolicyFileError(f"'{out}' exists; choose a new directory")
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    keep = {k: v for k, v in info.items() if k not in ("format", "policy")}
    save_policy(model, staging, keep | {"converted_from": str(model_zip)})
    staging.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aigcsim.agents.policy_io")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="convert a TRUSTED SB3 .zip (unpickles it)")
    c.add_argument("model_zip", type=Path)
    c.add_argument("--like", type=Path, required=True, help="policy directory of the run")
    c.add_argument("--out", type=Path, required=True, help="new policy directory")
    args = parser.parse_args(argv)
    try:
        out = convert(args.model_zip, args.like, args.out)
    except UserInputError as exc:
        print(f"error: {exc}")
        return 2
    print(f"safe policy directory written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
