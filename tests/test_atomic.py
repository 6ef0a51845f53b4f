"""Atomic writing: the target is the old file or the new one; a failed write leaves no trace."""

from __future__ import annotations

import json

import pytest

from cir_monai.atomic import atomic_path, write_json, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = write_text(tmp_path / "report.md", "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as staged:
            staged.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_the_staged_file_has_the_target_name(tmp_path):
    """Writers that read the suffix (nibabel, ITK, matplotlib) or embed the name (torch.jit.save) see the real one."""
    with atomic_path(tmp_path / "sub" / "ddf.nii.gz", fsync=True) as staged:
        assert staged.name == "ddf.nii.gz" and staged.parent.parent == tmp_path / "sub"
        staged.write_bytes(b"x")
    assert (tmp_path / "sub" / "ddf.nii.gz").read_bytes() == b"x"
    assert json.loads(write_json(tmp_path / "a.json", {"k": 1}).read_text()) == {"k": 1}
