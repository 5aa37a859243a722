"""Loading the diffusers backend's models: settings, clear missing-weights errors, CLI
settings, provenance without loading (no hub is reachable here)."""

from __future__ import annotations

import pytest

from aigcsim.cli.cache import backend_settings
from aigcsim.cli.main import main
from aigcsim.kernel.registry import UserInputError
from aigcsim.models.backends.diffusers_backend import DiffusersBackend, DiffusersSettings
from aigcsim.models.backends.hub import describe_model
from aigcsim.models.backends.registry import BACKENDS
from tests.models.tiny_models import tiny_model_paths, tiny_settings

__all__ = ["tiny_model_paths"]


def test_missing_local_folder_names_model_setting_and_remedy(tmp_path):
    missing = tmp_path / "no-such-sd"
    be = DiffusersBackend({"text_to_image": str(missing), "local_files_only": True})
    with pytest.raises(UserInputError) as err:
        be.text_to_image(["a cat"])
    msg = str(err.value)
    assert f"local folder '{missing}'" in msg and "does not exist" in msg
    assert "backend setting 'text_to_image'" in msg
    assert "huggingface-cli download stabilityai/stable-diffusion-2-1-base --local-dir DIR" in msg
    assert "--backend-param text_to_image=DIR" in msg and "local_files_only=false" in msg


def test_missing_hub_id_offline(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    be = DiffusersBackend(
        {
            "captioner": "nobody-here/blip-missing",
            "local_files_only": True,
            "caption_source": "blip",
        }
    )
    with pytest.raises(
        UserInputError,
        match=r"captioner model from 'nobody-here/blip-missing' \(hub id\) with local_files_only=true \(backend setting 'captioner'\)",
    ):
        be.caption(__import__("numpy").zeros((1, 64, 64, 3), "uint8"))


def test_cli_exits_2_with_the_message(tmp_path, monkeypatch, capsys):
    argv = ["aigcsim", "cache", "build", "--out", str(tmp_path / "c.sqlite"),
            "--encoders", "seq-words/natural", "--backend", "diffusers",
            "--backend-param", f"captioner={tmp_path / 'nope'}",
            "--backend-param", "local_files_only=true", "--no-progress"]  # fmt: skip
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "could not load the captioner model" in err and "does not exist" in err
    assert "huggingface-cli download Salesforce/blip-image-captioning-base" in err
    assert "Traceback" not in err


def test_settings_validation():
    with pytest.raises(ValueError, match="Did you mean 'euler-a'"):
        DiffusersSettings(scheduler="euler_a")
    with pytest.raises(ValueError, match="float16 is for CUDA"):
        DiffusersSettings(device="cpu", dtype="float16")
    assert DiffusersSettings(device="cuda").torch_dtype_name() == "float16"
    assert DiffusersSettings().torch_dtype_name() == "float32"
    with pytest.raises(UserInputError, match="unknown key 'stepz'"):
        BACKENDS.build("diffusers", {"stepz": 3})


def test_backend_settings_from_yaml_and_params(tmp_path):
    cfg = tmp_path / "be.yaml"
    cfg.write_text("num_inference_steps: 25\nrevisions: {text_to_image: abc123}\n")
    data = backend_settings(
        "cuda", cfg, ["guidance_scale=5", "revisions.clip=def", "text_to_image=/m/sd"]
    )
    s = DiffusersSettings(**data)
    assert (s.device, s.num_inference_steps, s.guidance_scale) == ("cuda", 25, 5.0)
    assert s.revisions == {"text_to_image": "abc123", "clip": "def"}
    assert s.text_to_image == "/m/sd"
    with pytest.raises(UserInputError, match="key=value"):
        backend_settings("cpu", None, ["novalue"])
    cfg.write_text("- a list\n")
    with pytest.raises(UserInputError, match="expected a YAML mapping"):
        backend_settings("cpu", cfg, None)


def test_model_ids_without_loading(tiny_model_paths):
    be = DiffusersBackend(tiny_settings(tiny_model_paths))
    ids = be.model_ids()
    assert ids["text_to_image"].startswith("local:") and "config-sha256:" in ids["text_to_image"]
    assert ids["vq"] == "amused/amused-256@main (not in the local hub cache)"
    assert "scheduler=ddim steps=2" in ids["receiver"]
    assert "lpips-alex-v0.1" in ids["lpips"]
    assert be._models == {}, "model_ids must not load any model"
    assert describe_model(str(tiny_model_paths["clip"])) == ids["clip"]
    ids2 = DiffusersBackend(tiny_settings(tiny_model_paths, num_inference_steps=3)).model_ids()
    assert ids2["receiver"] != ids["receiver"]


def test_describe_model_reads_the_commit_of_a_cached_hub_snapshot(tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--someorg--somemodel"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "snapshots" / commit / "model_index.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    assert describe_model("someorg/somemodel") == f"someorg/somemodel@{commit}"
    assert describe_model("someorg/other") == "someorg/other@main (not in the local hub cache)"
    assert (
        describe_model("/definitely/missing/folder") == "local:/definitely/missing/folder (missing)"
    )
