"""Many pairs: one process and two torchrun (gloo) processes write the same files, a rerun resumes, a bad pair is
reported while the others go on."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from cir_monai.cli import main
from cir_monai.engines.batch import finished, register_many, shard, with_ids
from cir_monai.engines.inference import register_files

ROOT = Path(__file__).resolve().parents[2]
AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])


@pytest.fixture(scope="module")
def study(tmp_path_factory, write_synthetic_pair):
    """Five small synthetic pairs with moving labels, and a datalist of them."""
    root = tmp_path_factory.mktemp("study")
    pairs = [write_synthetic_pair(root, AFFINE, seed=k, prefix=f"s{k}_") for k in range(5)]
    (root / "datalist.json").write_text(json.dumps({"test": pairs}))
    return root, pairs


def written(folder: Path) -> dict[str, object]:
    """Every file of the pairs' folders: NIfTI arrays and JSON texts (the summaries left out)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in ("summary.json", "summary.md"):
            key = str(path.relative_to(folder))
            files[key] = np.asarray(nib.load(path).dataobj) if path.name.endswith(".nii.gz") else path.read_text()
    return files


def test_shard_and_ids():
    assert shard(range(7), 0, 2) == [0, 2, 4, 6] and shard(range(7), 1, 2) == [1, 3, 5]
    assert sum((shard(range(10), r, 3) for r in range(3)), []) != list(range(10))  # interleaved, not blocks
    assert sorted(sum((shard(range(10), r, 3) for r in range(3)), [])) == list(range(10))
    with pytest.raises(ValueError, match=r"rank 2 is not in \[0, 2\)"):
        shard([1], 2, 2)
    pairs = [{"fixed": "/a/f.nii.gz", "moving": "/a/m.nii.gz"}, {"fixed": "/a/f.nii.gz", "moving": "/b/x.nii.gz"}]
    assert [p["id"] for p in with_ids(pairs)] == ["pair_000_m", "pair_001_x"]
    with pytest.raises(ValueError, match="pairs 0 and 1 have the same id 'same'"):
        with_ids([dict(p, id="same") for p in pairs])


def test_two_gloo_processes_write_what_one_process_writes(study, model_file, tmp_path):
    """torchrun with 2 CPU processes: each registers its share, rank 0 writes one summary of all; every file equals
    the one-process run's, bit for bit (both on one thread), and a pair's files equal `register`'s."""
    root, pairs = study
    one = register_many(pairs, (0.5, 2.0), tmp_path / "one", model=model_file, workers=1, refine=2, fine_steps=1,
                        progress=False)
    assert one["registered"] == 5 and one["processes"] == 1
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "cir_monai", "batch", str(root / "datalist.json"),
           "--model", str(model_file), "--out", str(tmp_path / "two"), "--lam", "0.5,2", "--refine", "2",
           "--fine-steps", "1", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert proc.stdout.count("5 registered, 0 already done, 0 failed") == 1  # rank 0 alone reports
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["processes"] == 2 and two["registered"] == 5
    assert [p["rank"] for p in two["pairs"].values()] == [0, 1, 0, 1, 0]
    a, b = written(tmp_path / "one"), written(tmp_path / "two")
    assert sorted(a) == sorted(b) and len(a) == 5 * (1 + 2 * 4)  # pair.json; per λ warped, label, ddf, transform
    for key, value in a.items():
        if isinstance(value, np.ndarray):
            assert value.dtype == b[key].dtype and np.array_equal(value, b[key]), key
        else:
            assert value == b[key].replace(str(tmp_path / "two"), str(tmp_path / "one")), key
    single = register_files(pairs[3]["fixed"], pairs[3]["moving"], (2.0,), tmp_path / "single",
                            moving_label=pairs[3]["moving_label"], model=model_file, refine=2, fine_steps=1,
                            progress=False)
    for name in ("ddf", "warped", "warped_label"):
        assert np.array_equal(np.asarray(nib.load(single[2.0][name]).dataobj),
                              a[f"pair_003_s3_moving/lam_2/{name}.nii.gz"]), name


def test_a_rerun_resumes_and_a_bad_pair_does_not_stop_the_others(study, model_file, tmp_path):
    root, pairs = study
    broken = tmp_path / "broken_moving.nii.gz"  # a valid header, then the data cut short
    whole = gzip.decompress(Path(pairs[1]["moving"]).read_bytes())
    broken.write_bytes(gzip.compress(whole[: len(whole) // 3]))
    three = [pairs[0], dict(pairs[1], moving=str(broken), id="bad"), pairs[2]]
    first = register_many(three, (1.0,), tmp_path / "out", model=model_file, workers=1, refine=0,
                          progress=False)
    assert (first["registered"], first["skipped"], first["failed"]) == (2, 0, 1)
    assert "broken_moving.nii.gz: moving cannot be read (truncated or corrupt file?)" in first["pairs"]["bad"]["error"]
    assert not (tmp_path / "out" / "bad").exists()
    assert not list((tmp_path / "out").glob(".*partial*"))  # no half-written folder
    assert finished(tmp_path / "out" / "pair_000_s0_moving", three[0], [1.0])
    assert not finished(tmp_path / "out" / "pair_000_s0_moving", three[0], [1.0, 2.0])
    before = (tmp_path / "out" / "pair_000_s0_moving" / "lam_1" / "ddf.nii.gz").stat().st_mtime_ns
    three[1]["moving"] = pairs[1]["moving"]  # the user mends the file and runs the same command again
    again = register_many(three, (1.0,), tmp_path / "out", model=model_file, workers=0, refine=0,
                          progress=False)
    assert (again["registered"], again["skipped"], again["failed"]) == (1, 2, 0)
    assert (tmp_path / "out" / "bad" / "lam_1" / "warped.nii.gz").is_file()
    assert (tmp_path / "out" / "pair_000_s0_moving" / "lam_1" / "ddf.nii.gz").stat().st_mtime_ns == before
    assert "1 pairs registered, 2 already done, 0 failed" in (tmp_path / "out" / "summary.md").read_text()


def test_the_command_reports_failed_pairs_in_one_line(study, model_file, tmp_path, capsys):
    root, pairs = study
    broken = tmp_path / "cut.nii.gz"
    broken.write_bytes(gzip.compress(gzip.decompress(Path(pairs[0]["moving"]).read_bytes())[:1000]))
    (tmp_path / "list.json").write_text(json.dumps([dict(pairs[0], moving=str(broken)), pairs[1]]))
    status = main(["batch", str(tmp_path / "list.json"), "--model", str(model_file), "--out",
                   str(tmp_path / "out"), "--refine", "0", "--fine-steps", "0", "--workers", "0"])
    err = capsys.readouterr().err
    assert status == 1
    assert "cir-monai: error: 1 pair(s) failed (pair_000_cut)" in err and "summary.md" in err
    assert (tmp_path / "out" / "pair_001_s1_moving" / "lam_1" / "ddf.nii.gz").is_file()
