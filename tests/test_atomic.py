"""Atomic writing: the target is the old file or the new one; a failed write leaves no trace."""

from __future__ import annotations

import json

import pytest

from cir_monai.atomic import atomic_path, staged_folder, write_json, write_text


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


def test_a_staged_folder_appears_only_on_success_and_merges(tmp_path):
    out = tmp_path / "runs" / "reg"
    with pytest.raises(RuntimeError):
        with staged_folder(out) as staging:
            (staging / "pair" / "lam_1").mkdir(parents=True)
            (staging / "pair" / "lam_1" / "ddf.nii.gz").write_text("half")
            raise RuntimeError("interrupted")
    assert not (tmp_path / "runs").exists()  # no output, no staging folder, not even the parent it made
    for lam in ("1", "4"):
        with staged_folder(out) as staging:
            (staging / "pair" / f"lam_{lam}").mkdir(parents=True)
            (staging / "pair" / f"lam_{lam}" / "ddf.nii.gz").write_text(lam)
    assert sorted(p.name for p in (out / "pair").iterdir()) == ["lam_1", "lam_4"]  # merged, the first kept
    assert [p.name for p in out.parent.iterdir()] == ["reg"]


def test_a_fresh_report_folder_replaces_the_earlier_report(tmp_path):
    for tables in (["a.csv", "b.csv"], ["c.csv"]):
        with staged_folder(tmp_path / "sweep", fresh=True) as staging:
            for name in tables + ["summary.json"]:
                (staging / name).write_text("x")
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["c.csv", "summary.json"]  # no stale tables


def test_a_staged_folder_names_an_unusable_target(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        with staged_folder(tmp_path / "file"):
            pass
    with pytest.raises(OSError, match=f"cannot write to output folder {tmp_path / 'file' / 'out'}: .*file is a file"):
        with staged_folder(tmp_path / "file" / "out"):
            pass
