"""Model files' frames: the shipped plain state dict reads its frame from the bundle it lies in."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from cir_monai.defaults import bundle_root, default_model
from cir_monai.frame import EMBEDDED_FRAME, OFFICIAL_FRAME, model_frame
from cir_monai.io import bundle_frame, load_network, model_file_frame, record_bundle_frame


def _bundle_copy(tmp_path):
    """models/model.pt and configs/metadata.json of the shipped bundle, copied."""
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    (root / "configs").mkdir()
    shutil.copy(default_model(), root / "models" / "model.pt")
    shutil.copy(bundle_root() / "configs" / "metadata.json", root / "configs" / "metadata.json")
    return root


def test_the_shipped_model_records_its_frame(caplog):
    """The shipped model was trained in the embedded 2 mm frame and says so, without the 'records no frame' note."""
    with caplog.at_level(logging.DEBUG, logger="cir_monai.inference"):
        net = load_network(None)
    assert net.frame == model_frame(EMBEDDED_FRAME, net)
    assert bundle_frame(default_model()) == model_frame(EMBEDDED_FRAME)
    assert model_file_frame(default_model()) == net.frame
    assert "records no frame" not in caplog.text


def test_a_plain_state_dict_outside_a_bundle_warns(tmp_path, caplog):
    lone = tmp_path / "weights.pt"
    shutil.copy(default_model(), lone)
    with caplog.at_level(logging.WARNING, logger="cir_monai.inference"):
        net = load_network(lone)
    assert "records no frame" in caplog.text and str(lone) in caplog.text
    assert net.frame["spacing"] == EMBEDDED_FRAME["spacing"]


def test_a_bundle_frame_is_read_and_recorded(tmp_path):
    """A bundle trained at 1 mm (MONAI Label training its copy) records that frame; its model is read in it."""
    root = _bundle_copy(tmp_path)
    model = root / "models" / "model.pt"
    assert record_bundle_frame(model, EMBEDDED_FRAME) is False  # already recorded: the file is not rewritten
    assert record_bundle_frame(model, OFFICIAL_FRAME) is True
    assert load_network(model).frame["spacing"] == [1.0, 1.0, 1.0]
    metadata = json.loads((root / "configs" / "metadata.json").read_text())
    assert metadata["frame"]["spacing"] == [1.0, 1.0, 1.0] and metadata["version"]  # the rest is kept
    assert record_bundle_frame(tmp_path / "elsewhere.pt", OFFICIAL_FRAME) is False  # not in a bundle: nothing


def test_a_broken_bundle_frame_names_the_file(tmp_path):
    root = _bundle_copy(tmp_path)
    meta = root / "configs" / "metadata.json"
    meta.write_text(json.dumps({"frame": {"spacing": [2.0, -1.0, 2.0]}}))
    with pytest.raises(ValueError, match="metadata.json.*frame"):
        load_network(root / "models" / "model.pt")


def test_a_package_without_the_weights_file_gets_the_shipped_frame(tmp_path):
    """inference.yaml's frame when only models/model.ts travels (MONAI Deploy): the shipped frame, not an error."""
    assert model_file_frame(tmp_path / "models" / "model.pt", missing=EMBEDDED_FRAME) == model_frame(EMBEDDED_FRAME)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        model_file_frame(tmp_path / "models" / "model.pt")


def test_save_model_file_is_the_one_writer_read_back_by_load_network(tmp_path):
    """A full model file keeps the architecture, weights and frame; a plain one in a bundle's models/ folder records
    its frame in the bundle's metadata; a folder as the target is named."""
    import torch

    from cir_monai.io import load_checkpoint, save_model_file
    from cir_monai.networks import CLapIRN

    torch.manual_seed(0)
    net = CLapIRN(2, start_channels=2, conditioning="centralized")
    frame = {"spacing": [3.0, 3.0], "spatial_size": [40, 48]}
    back = load_network(save_model_file(net, tmp_path / "m.pt", frame, source="test"))
    assert back.config == net.config and model_file_frame(tmp_path / "m.pt") == model_frame(frame, net)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), net.state_dict().values()))
    assert load_checkpoint(tmp_path / "m.pt")["source"] == "test"

    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "metadata.json").write_text("{}")
    plain = save_model_file(net, bundle / "models" / "model.pt", frame, plain=True)
    assert set(load_checkpoint(plain)) == set(net.state_dict())  # the zoo's plain state dict
    assert bundle_frame(plain) == model_frame(frame, net)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save_model_file(net, tmp_path, frame)
