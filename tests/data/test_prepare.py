from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np

from cir_monai.data import load_pairs, prepare_embedded


def test_prepare_writes_reproducible_sets(tmp_path):
    out = tmp_path / "embedded"
    datalist = prepare_embedded(out, num_validation=1, num_test=2, spacing=4.0, shape=(40, 48, 40), progress=False)
    content = json.loads(datalist.read_text())
    assert len(content["validation"]) == 1 and len(content["test"]) == 2
    assert content["labels"] == {"1": "CSF and other", "2": "grey matter", "3": "white matter"}
    pairs = load_pairs(out, split="test")
    fixed = nib.load(pairs[0]["fixed"])
    label = nib.load(pairs[0]["fixed_label"])
    assert fixed.shape == (40, 48, 40) and np.allclose(fixed.affine, label.affine)
    assert np.allclose(fixed.header.get_zooms(), 4.0)
    assert set(np.unique(np.asarray(label.dataobj))) <= {0, 1, 2, 3}
    first = fixed.get_fdata()
    mtime = datalist.stat().st_mtime_ns
    assert prepare_embedded(out, 1, 2, 4.0, (40, 48, 40), progress=False).stat().st_mtime_ns == mtime  # skipped
    again = prepare_embedded(tmp_path / "other", 1, 2, 4.0, (40, 48, 40), progress=False)
    assert np.array_equal(nib.load(str(again.parent / content["test"][0]["fixed"])).get_fdata(), first)


def test_prepare_command(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cir_monai.data", "prepare", "--out", str(tmp_path / "d"), "--num-validation", "1",
         "--num-test", "1", "--spacing", "4", "--shape", "40,48,40"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "embedded data set ready" in proc.stdout and str(tmp_path / "d" / "datalist.json") in proc.stdout
    assert "writing pairs" in proc.stderr  # the progress bar
    bad = subprocess.run([sys.executable, "-m", "cir_monai.data", "prepare", "--out", str(tmp_path), "--shape", "4,4"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--shape takes three integers" in bad.stderr
