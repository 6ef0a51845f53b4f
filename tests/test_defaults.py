"""The defaults' one home: the λ list, the device, the bundle and data folders (and their environment overrides)."""

from __future__ import annotations

import pytest
import torch

from cir_monai import defaults


def test_lambda_list_and_device():
    assert defaults.DEFAULT_LAMS == (0.0, 0.1, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0)  # the paper's evaluation list
    assert defaults.default_device("cpu") == torch.device("cpu")
    assert defaults.default_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be cpu or cuda, got 'gpu0'"):
        defaults.default_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available on this machine"):
            defaults.default_device("cuda")


def test_overlays_by_name_or_file(tmp_path):
    named = defaults.overlay_files("variants/cir_cm")
    assert named == [str(defaults.installed("configs") / "variants" / "cir_cm.yaml")] and len(named) == 1
    own = tmp_path / "mine.yaml"
    own.write_text("lr: 0.1\n")
    assert defaults.overlay_files([str(own), "scale/cpu_small.yaml"])[0] == str(own)
    assert defaults.overlay_files(None) == [] and defaults.overlay_files(()) == []
    with pytest.raises(FileNotFoundError, match="config overlay not found: variants/nope"):
        defaults.overlay_files("variants/nope")


def test_bundle_is_found_and_can_be_redirected(tmp_path, monkeypatch):
    monkeypatch.delenv("CIR_MONAI_BUNDLE", raising=False)
    assert (defaults.bundle_configs() / "inference.yaml").is_file() and defaults.default_model().is_file()
    assert (defaults.installed("docs") / "method.md").is_file()
    monkeypatch.setenv("CIR_MONAI_BUNDLE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="bundle folder without configs/.*CIR_MONAI_BUNDLE"):
        defaults.bundle_root()
    (tmp_path / "configs").mkdir()
    assert defaults.bundle_root() == tmp_path


def test_data_go_to_the_data_folder_or_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CIR_MONAI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CIR_MONAI_DATA", raising=False)
    assert defaults.embedded_dir() == tmp_path / "cache" / "embedded"
    monkeypatch.setenv("CIR_MONAI_DATA", str(tmp_path / "data"))
    assert defaults.embedded_dir() == tmp_path / "data" / "embedded"
