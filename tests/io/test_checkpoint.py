from __future__ import annotations

import pytest
import torch

from cir_monai.io import load_checkpoint, save_checkpoint


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"iteration": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # killed while writing

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"iteration": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("garbage")
    with pytest.raises(ValueError, match="bad.pt is not a readable checkpoint"):
        load_checkpoint(bad)


def test_unsafe_file_is_refused_and_nothing_in_it_runs(unsafe_model):
    """A pickle that would run code is refused by the weights-only unpickler: the marker it would create never
    exists."""
    path, marker = unsafe_model
    torch.load(path, weights_only=False)  # the fixture is real: a full unpickler runs the payload
    assert marker.exists()
    marker.unlink()
    with pytest.raises(ValueError, match=r"downloaded.pt was refused: it holds Python objects .* could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_project_files_load_weights_only(tmp_path):
    """What the trainer writes (network config, frame, optimizer state, RNG state) reads back weights-only."""
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "network": {"spatial_dims": 3, "lite": False}, "optimizer": opt.state_dict(),
             "frame": {"spacing": [2.0, 2.0, 2.0], "percentiles": [0.0, 100.0]}, "iteration": 3,
             "rng": {"torch": torch.get_rng_state(), "cuda": []}}
    loaded = load_checkpoint(save_checkpoint(state, tmp_path / "c.pt"))
    assert loaded["optimizer"]["state"][0]["step"] == 1 and torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
