"""The `cir-monai` command through its real entry point (fire) on tiny embedded data (8 mm, 24³)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import nibabel as nib
import numpy as np
import pytest
import torch

from cir_monai.cli import main, parse_lams
from cir_monai.defaults import DEFAULT_FINE_STEPS, DEFAULT_REFINE
from cir_monai.io import load_network
from cir_monai.io.checkpoint import save_checkpoint
from cir_monai.networks import CLapIRN
from cir_monai.workflows import prepared_pairs

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--spacing", "8.0", "--spatial_size", "[24,24,24]", "--num_validation", "1", "--num_test", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny data set (1 validation, 1 test pair) and an untrained small model file."""
    work = tmp_path_factory.mktemp("cli")
    pairs = prepared_pairs(work / "data", "test", 8.0, (24, 24, 24), num_validation=1, num_test=1)
    torch.manual_seed(0)
    net = CLapIRN(spatial_dims=3, start_channels=2)
    model = save_checkpoint({"model": net.state_dict(), "network": net.config}, work / "model.pt")
    return work, pairs[0], model


def assert_png(path: Path) -> None:
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert float(image[..., :3].std()) > 0.05, f"{path} looks blank"


def assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.partial-*"))


def test_parse_lams():
    assert parse_lams("0.1,1,4") == [0.1, 1.0, 4.0]
    assert parse_lams((0.1, 1, 4)) == [0.1, 1.0, 4.0]
    assert parse_lams(2) == [2.0] and parse_lams("[0, 10]") == [0.0, 10.0]
    with pytest.raises(ValueError, match="must be numbers"):
        parse_lams("one")


def test_register_several_lams_with_pictures(tiny, tmp_path, capsys):
    work, pair, model = tiny
    out = tmp_path / "reg"
    rc = main(["register", pair["fixed"], pair["moving"], "--lam", "0.1,4", "--out", str(out), "--moving-label",
               pair["moving_label"], "--model", str(model), "--png"])
    assert rc == 0
    folders = sorted(p.name for p in out.glob("*/lam_*"))
    assert folders == ["lam_0.1", "lam_4"]
    fixed_affine = nib.load(pair["fixed"]).affine
    for folder in out.glob("*/lam_*"):
        for name in ("warped.nii.gz", "ddf.nii.gz", "warped_label.nii.gz"):
            assert np.allclose(nib.load(str(folder / name)).affine, fixed_affine)
        assert nib.load(str(folder / "ddf.nii.gz")).shape == (24, 24, 24, 1, 3)
        assert_png(folder / "overlay.png")
    # a second run into the same folder adds its λ and keeps the earlier ones
    assert main(["register", pair["fixed"], pair["moving"], "--lam", "1", "--out", str(out),
                 "--model", str(model)]) == 0
    assert sorted(p.name for p in out.glob("*/lam_*")) == ["lam_0.1", "lam_1", "lam_4"]
    assert not list(tmp_path.glob(".reg.partial-*"))
    # another pair whose folder name is the same (pair_000_moving) is refused instead of mixed in
    other = tmp_path / "other" / "moving.nii.gz"
    other.parent.mkdir()
    other.write_bytes(Path(pair["fixed"]).read_bytes())
    assert main(["register", pair["fixed"], str(other), "--out", str(out), "--model", str(model)]) == 1
    assert "holds the results of another pair" in capsys.readouterr().err
    assert sorted(p.name for p in out.glob("*/lam_*")) == ["lam_0.1", "lam_1", "lam_4"]
    assert json.loads(next(out.glob("*/pair.json")).read_text())["moving"] == str(Path(pair["moving"]).absolute())


def test_sweep_applies_the_documented_rule(tiny, tmp_path, capsys):
    work, pair, model = tiny
    out = tmp_path / "sweep"
    rc = main(["sweep", "--data", str(work / "data"), "--lams", "0,2,10", "--out", str(out), "--model", str(model),
               "--max-folding", "100"])
    assert rc == 0
    with open(next(out.glob("*.csv"))) as f:
        rows = list(csv.DictReader(f))
    assert [r["lam"] for r in rows] == ["before", "0", "2", "10"]
    assert {"dice_mean", "hd95_mean", "jac_std", "folding_pct", "sdlogj", "seconds", "dice_1"} <= set(rows[0])
    # one pair: λ* must be the λ with the highest Dice (ties: the larger λ) among those under the folding bound
    per_lam = {r["lam"]: {k: float(v) for k, v in r.items() if k != "lam"} for r in rows}
    best = max(lam for lam, v in ((float(k), v) for k, v in per_lam.items() if k != "before")
               if v["dice_mean"] == max(w["dice_mean"] for n, w in per_lam.items() if n != "before"))
    star = json.loads((out / "lam_star.json").read_text())
    assert star["lam_star"] == best and star["rule"] == "max_dice"
    # the sweep scores the pipeline `register` runs
    assert star["refine"] == DEFAULT_REFINE and star["fine_steps"] == DEFAULT_FINE_STEPS
    overlay = (out / "register_lam.yaml").read_text()
    assert f"lams: [{best:g}]" in overlay and f"refine: {DEFAULT_REFINE}" in overlay
    assert f"fine_steps: {DEFAULT_FINE_STEPS}" in overlay
    for name in ("tradeoff.png", "lambda_panel.png", "overlay.png"):
        assert_png(out / name)
    report = (out / "summary.md").read_text()
    assert "![" in report and "tradeoff.png" in report and f"**λ\\* = {best:g}**" in report
    assert f"--lam {out}`" in report and ".partial-" not in report  # names the final folder, not the staging one
    assert str(out) in capsys.readouterr().out
    # register picks λ* up from the sweep folder, with the refinement it was chosen for, and says so
    capsys.readouterr()
    reg = tmp_path / "reg"
    assert main(["register", pair["fixed"], pair["moving"], "--lam", str(out), "--out", str(reg),
                 "--model", str(model)]) == 0
    assert [p.name for p in reg.glob("*/lam_*")] == [f"lam_{best:g}"]
    printed = capsys.readouterr()
    assert (f"λ* = {best:g} from {out} (chosen for {DEFAULT_REFINE} refinement steps and {DEFAULT_FINE_STEPS} at the "
            f"fixed grid)") in printed.err
    assert "refining" in printed.err and "written in" in printed.err  # progress: the steps, then the λ's line
    assert re.search(r"det J ≤ 0 in [0-9.]+ % of voxels", printed.err)  # each λ's folding, said as it is written
    assert printed.out.strip().splitlines()[-1].startswith("done in ")
    # an older sweep scored the network alone: register follows it, unless --refine is given (with a note)
    star["refine"] = 0
    del star["fine_steps"]  # older sweeps did not record it: they had no steps at the fixed grid
    (out / "lam_star.json").write_text(json.dumps(star))
    assert main(["register", pair["fixed"], pair["moving"], "--lam", str(out), "--out", str(reg),
                 "--model", str(model), "--refine", "5"]) == 0
    err = capsys.readouterr().err
    assert "was chosen for 0 refinement steps; registering with 5" in err
    assert "chosen for 0 refinement steps and 0 at the fixed grid" in err and "steps at the fixed grid;" not in err


def test_evaluate_through_the_bundle(tiny, tmp_path):
    work, pair, model = tiny
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(model), "--lams", "1,8", "--out", str(out), "--dataset_dir",
               str(work / "data"), *TINY])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["per_lam"]) == ["before", "1", "8"] and summary["pairs"] == 1
    assert_png(out / "tradeoff.png")
    test_before = summary["per_lam"]["before"]["dice_mean"]
    # a datalist given with --data (its validation list here), written over the earlier result
    rc = main(["evaluate", "--model", str(model), "--lams", "2", "--out", str(out), "--data",
               str(work / "data" / "datalist.json"), "--split", "validation", "--dataset_dir", str(work / "data"),
               *TINY])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["per_lam"]) == ["before", "2"] and summary["pairs"] == 1  # no stale rows of the first run
    assert summary["per_lam"]["before"]["dice_mean"] != test_before  # the validation pair, not the test pair
    # a bundle key the command sets itself is refused rather than silently overwritten
    assert main(["evaluate", "--model", str(model), "--out", str(tmp_path / "e2"), "--ckpt_path", "x.pt"]) == 1


def test_train_and_convert(tiny, tmp_path, reference_dir):
    work, pair, model = tiny
    out = tmp_path / "train"
    rc = main(["train", "--out", str(out), "--dataset_dir", str(work / "data"), "--bundle_root", str(tmp_path / "b"),
               "--network_def#start_channels", "2", "--train#trainer#iterations", "[2,1,1]",
               "--train#trainer#freeze_steps", "1", "--val_interval", "100", *TINY])
    assert rc == 0 and load_network(out / "model.pt").config["start_channels"] == 2
    converted = tmp_path / "lite.pt"
    assert main(["convert", str(reference_dir / "official_clapirn_lite_oasis.pth"), "--out", str(converted)]) == 0
    from cir_monai.io.official import load_official_checkpoint

    original = load_official_checkpoint(reference_dir / "official_clapirn_lite_oasis.pth").state_dict()
    loaded = load_network(converted).state_dict()
    assert original.keys() == loaded.keys() and all(torch.equal(original[k], loaded[k]) for k in original)
    # and it keeps the frame the authors trained in (1 mm OASIS), as the .pth itself does
    assert load_network(converted).frame == load_network(reference_dir / "official_clapirn_lite_oasis.pth").frame
    assert load_network(converted).frame["spacing"] == [1.0, 1.0, 1.0]


@pytest.fixture()
def bad_files(tmp_path, tiny):
    _, pair, _ = tiny
    fixed_img = nib.load(pair["fixed"])
    data = np.asarray(fixed_img.dataobj, dtype=np.float32)
    truncated = tmp_path / "truncated.nii.gz"
    raw = Path(pair["fixed"]).read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])  # the header survives, the data end early
    constant = tmp_path / "constant.nii.gz"
    nib.save(nib.Nifti1Image(np.full(data.shape, 3.0, np.float32), fixed_img.affine), str(constant))
    apart = np.zeros_like(data)
    shift = int(0.75 * data.shape[0])
    apart[shift:] = data[: data.shape[0] - shift]  # the same brain, moved out of the fixed one's way
    barely = tmp_path / "apart.nii.gz"
    nib.save(nib.Nifti1Image(apart, fixed_img.affine), str(barely))
    label = np.asarray(nib.load(pair["moving_label"]).dataobj, dtype=np.float32)
    fractional = tmp_path / "resampled_label.nii.gz"
    nib.save(nib.Nifti1Image(label * 0.75 + 0.1 * (label > 0), fixed_img.affine), str(fractional))
    text = tmp_path / "notes.nii.gz"
    text.write_text("not an image")
    flat = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((24, 24), np.float32), np.eye(4)), str(flat))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    mask = tmp_path / "brain_mask.nii.gz"
    nib.save(nib.Nifti1Image((data > 0).astype(np.uint8), fixed_img.affine), str(mask))
    series = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([data, data, data], -1), fixed_img.affine), str(series))
    ct = tmp_path / "head_ct.nii.gz"  # air at -1024 HU around the same anatomy
    nib.save(nib.Nifti1Image(np.where(data > 0, 20 + 60 * data / data.max(), -1024).astype(np.int16),
                             fixed_img.affine), str(ct))
    return {"text": str(text), "flat": str(flat), "blocker": blocker, "truncated": str(truncated),
            "constant": str(constant), "barely": str(barely), "fractional": str(fractional),
            "labelmap": pair["moving_label"], "mask": str(mask), "series": str(series), "ct": str(ct)}


@pytest.mark.parametrize("case, message", [
    ("missing", "fixed file not found"),
    ("text", "cannot be read as an image"),
    ("flat", "must be a 3D volume, got shape (24, 24) (2D)"),
    ("lam", "lam values must lie in [0, 10] (the model's range), got [0.1, 12.0]"),
    ("sweepdir", "--lam runs/nope: no such sweep folder"),
    ("unwritable", "cannot write to output folder"),
    ("option", "unknown option --lamz"),
    ("truncated", "truncated.nii.gz: fixed cannot be read (truncated or corrupt file?)"),
    ("constant", "constant.nii.gz: moving is empty or constant (every voxel 3): nothing to register"),
    ("barely", "apart.nii.gz barely overlaps"),
    ("fractional", "resampled_label.nii.gz: moving_label has non-integer values"),
    ("labelmap", "moving_label.nii.gz: moving looks like a label map (4 distinct integer values from 0 to 3"),
    ("mask", "brain_mask.nii.gz: moving is a binary mask (values 0 and 1 only)"),
    ("series", "series.nii.gz: moving is a 4D series of 3 volumes"),
    ("ct", "head_ct.nii.gz: moving looks like a CT in Hounsfield units"),
])
def test_bad_input_is_one_line(case, message, tiny, tmp_path, bad_files, capsys):
    work, pair, model = tiny
    out = tmp_path / "out"
    fixed, lam = pair["fixed"], "1"
    if case == "missing":
        fixed = str(tmp_path / "nope.nii.gz")
    elif case in ("text", "flat"):
        fixed = bad_files[case]
    elif case == "lam":
        lam = "0.1,12"
    elif case == "sweepdir":
        lam = "runs/nope"
    elif case == "unwritable":
        out = bad_files["blocker"] / "out"
    elif case == "truncated":
        fixed = bad_files[case]
    moving = bad_files[case] if case in ("constant", "barely", "labelmap", "mask", "series", "ct") else pair["moving"]
    args = ["register", fixed, moving, "--lam", lam, "--out", str(out), "--model", str(model)]
    if case == "fractional":
        args += ["--moving-label", bad_files[case]]
    if case == "option":
        args = ["evaluate", "--model", str(model), "--out", str(out), "--lamz", "[4]"]
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[0].startswith("cir-monai: error: ") and message in err[0], err
    assert "Traceback" not in "\n".join(err)
    if case != "unwritable":
        assert_nothing_left(out)


def test_unknown_flag_of_a_subcommand(tiny, tmp_path, capsys):
    """Refused before any work (fire alone would run the command, then complain)."""
    work, pair, model = tiny
    rc = main(["register", pair["fixed"], pair["moving"], "--lamz", "4", "--out", str(tmp_path / "o"),
               "--model", str(model)])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown option --lamz for `register`" in err and "--moving-label" in err
    assert not (tmp_path / "o").exists()


def test_console_script_exit_status(tmp_path):
    """The installed entry point (`python -m cir_monai`) exits non-zero with one line on bad input."""
    proc = subprocess.run([sys.executable, "-m", "cir_monai", "register", str(tmp_path / "f.nii.gz"),
                           str(tmp_path / "m.nii.gz"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("cir-monai: error:") and "file not found" in proc.stderr
    assert not (tmp_path / "o").exists()
    help_text = subprocess.run([sys.executable, "-m", "cir_monai", "sweep", "--help"], capture_output=True, text=True,
                               cwd=ROOT, timeout=300)
    text = help_text.stdout + help_text.stderr  # fire shows help on stderr when not on a terminal
    assert help_text.returncode == 0 and "λ*" in text and "--max_folding" in text


def test_register_writes_the_inverse(tiny, tmp_path, capsys):
    from cir_monai.networks import composition_residual

    work, pair, model = tiny
    out = tmp_path / "inv"
    assert main(["register", pair["fixed"], pair["moving"], "--lam", "1", "--out", str(out), "--model", str(model),
                 "--inverse", "--frame", "input"]) == 0
    assert "inverse residual" in capsys.readouterr().out
    folder = next(out.glob("*/lam_1"))
    load = lambda name: torch.from_numpy(np.moveaxis(np.asarray(nib.load(folder / name).dataobj)[..., 0, :], -1, 0).copy())[None]  # noqa: E731,E501
    ddf, inverse = load("ddf.nii.gz"), load("ddf_inverse.nii.gz")
    assert ddf.abs().max() > 0.05
    # φ ∘ φ⁻¹ = id, the identity the inversion solves, holds in the written files (an untrained model's field is
    # rough at the voxel scale, where φ⁻¹ ∘ φ is not exact: that one is tested on smooth fields in test_warp.py)
    residual = composition_residual(inverse, ddf)[0, 2:-2, 2:-2, 2:-2]
    naive = composition_residual(-ddf, ddf)[0, 2:-2, 2:-2, 2:-2]
    assert residual.mean() < 0.2 * naive.mean(), (residual.mean(), naive.mean())


def test_home_relative_folders_are_expanded(tiny, tmp_path, monkeypatch, capsys):
    """`--out ~/...` and `--lam ~/<sweep folder>` (as bash leaves them after `=`) mean the home folder."""
    work, pair, model = tiny
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["sweep", "--data", str(work / "data"), "--lams", "1,4", "--out=~/sw", "--model", str(model),
                 "--max-folding", "100"]) == 0
    assert (tmp_path / "sw" / "lam_star.json").is_file() and not (Path.cwd() / "~").exists()
    assert f"report: {tmp_path / 'sw' / 'summary.md'}" in capsys.readouterr().out
    assert main(["register", pair["fixed"], pair["moving"], "--lam=~/sw", "--out=~/reg", "--model", str(model)]) == 0
    star = json.loads((tmp_path / "sw" / "lam_star.json").read_text())["lam_star"]
    assert [p.name for p in (tmp_path / "reg").glob("*/lam_*")] == [f"lam_{star:g}"]
