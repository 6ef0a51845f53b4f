from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from cir_monai.engines import RegistrationRunner
from cir_monai.engines.inference import register_files
from cir_monai.io import load_network
from cir_monai.networks import Warp

SHAPE = (36, 40, 32)


@pytest.mark.parametrize("flip", [False, True])
def test_outputs_in_the_fixed_space_and_consistent_with_warp(write_synthetic_pair, tmp_path, model_file, flip):
    affine = np.diag([-1.5 if flip else 1.5, 1.5, 2.0, 1.0])
    affine[:3, 3] = [30.0, -20.0, 5.0]
    paths = write_synthetic_pair(tmp_path, affine)
    net = load_network(model_file)
    written = RegistrationRunner(net, [dict(paths, id="case")], lams=(0.5, 4.0), output_dir=tmp_path / "out",
                                 progress=False).run()
    out = written["case"][0.5]
    warped_img, ddf_img = nib.load(out["warped"]), nib.load(out["ddf"])
    assert np.allclose(warped_img.affine, affine) and np.allclose(ddf_img.affine, affine)
    assert warped_img.shape == SHAPE and ddf_img.shape == (*SHAPE, 1, 3)
    ddf = torch.from_numpy(np.moveaxis(ddf_img.get_fdata()[..., 0, :], -1, 0)).float()[None]
    assert ddf.abs().max() > 0.05  # a real field, not the identity
    moving = torch.from_numpy(nib.load(paths["moving"]).get_fdata()).float()[None, None]
    expected = Warp("bilinear", "zeros")(moving, ddf)[0, 0].numpy()
    assert np.abs(warped_img.get_fdata() - expected).max() < 1e-2 * moving.max().item()
    labels = np.unique(np.asarray(nib.load(out["warped_label"]).dataobj))
    assert set(labels.tolist()) <= {0, 1, 2, 3}
    # larger λ, smoother field
    ddf4 = nib.load(written["case"][4.0]["ddf"]).get_fdata()
    assert np.abs(np.diff(ddf4, axis=0)).mean() < np.abs(np.diff(ddf_img.get_fdata(), axis=0)).mean()


def test_ddf_in_millimetres(write_synthetic_pair, tmp_path, model_file):
    affine = np.diag([1.5, 2.0, 2.5, 1.0])
    paths = write_synthetic_pair(tmp_path, affine)
    net = load_network(model_file)
    vox = RegistrationRunner(net, [paths], lams=(1.0,), output_dir=tmp_path / "v", progress=False).run()
    mm = RegistrationRunner(net, [paths], lams=(1.0,), output_dir=tmp_path / "m", ddf_units="mm", progress=False).run()
    v = nib.load(next(iter(vox.values()))[1.0]["ddf"]).get_fdata()
    m = nib.load(next(iter(mm.values()))[1.0]["ddf"]).get_fdata()
    assert np.allclose(m, v * np.array([1.5, 2.0, 2.5]), atol=1e-4)


def test_errors(tmp_path, model_file):
    with pytest.raises(FileNotFoundError, match="model file not found: .*nope.pt"):
        load_network(tmp_path / "nope.pt")
    net = load_network(model_file)
    with pytest.raises(ValueError, match=r"lam values must lie in \[0, 10\]"):
        RegistrationRunner(net, [], lams=(11.0,))
    with pytest.raises(ValueError, match="ddf_units"):
        RegistrationRunner(net, [], ddf_units="inch")


def test_register_files_reports_the_final_folder_and_leaves_nothing_on_failure(write_synthetic_pair, tmp_path,
                                                                               model_file):
    """The library function behind `cir-monai register`: records point into ``out``, not the staging folder."""
    paths = write_synthetic_pair(tmp_path, np.diag([1.5, 1.5, 2.0, 1.0]))
    out = tmp_path / "out"
    records = register_files(paths["fixed"], paths["moving"], [1.0, 4.0], out, moving_label=paths["moving_label"],
                             model=model_file, frame="input", figures=True)
    assert sorted(records) == [1.0, 4.0]
    for lam, record in records.items():
        assert Path(record["folder"]) == out / "pair_000_moving" / f"lam_{lam:g}"
        for key in ("warped", "ddf", "warped_label", "overlay"):
            assert Path(record[key]).is_file() and Path(record[key]).parent == Path(record["folder"])
    # no work yet
    with pytest.raises(ValueError, match=r"frame must be model or input \(or a frame dict\), got 'inch'"):
        register_files(paths["fixed"], paths["moving"], [1.0], tmp_path / "bad", model=model_file, frame="inch")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.nii.gz", "moving.nii.gz", "moving_label.nii.gz", "out"]


def test_the_runner_refuses_to_mix_two_pairs_in_one_folder(write_synthetic_pair, tmp_path, model_file):
    """The bundle's register workflow writes straight into its output folder: the same check as register_files."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    net = load_network(model_file)
    for folder in (first, second):
        paths = dict(write_synthetic_pair(folder, np.diag([1.5, 1.5, 2.0, 1.0])), id="case")
        run = RegistrationRunner(net, [paths], lams=(1.0,), output_dir=tmp_path / "out", frame="input", progress=False)
        if folder is first:
            run.run()
        else:
            with pytest.raises(ValueError, match=r"out/case holds the results of another pair .*pair.json"):
                run.run()
    assert json.loads((tmp_path / "out" / "case" / "pair.json").read_text())["fixed"] == str(first / "fixed.nii.gz")


def test_resampled_registration_grid_writes_back_to_the_file_grid(write_synthetic_pair, tmp_path, model_file):
    """pixdim: registered on a 3 mm grid (labels too), outputs back on the fixed file's 1.5/2 mm grid."""
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    paths = write_synthetic_pair(tmp_path, affine)
    net = load_network(model_file)
    written = RegistrationRunner(net, [dict(paths, id="case")], lams=(1.0,), output_dir=tmp_path / "out",
                                 pixdim=3.0, progress=False).run()["case"][1.0]
    for key in ("warped", "ddf", "warped_label"):
        image = nib.load(written[key])
        assert np.allclose(image.affine, affine) and image.shape[:3] == SHAPE, key
    assert set(np.unique(np.asarray(nib.load(written["warped_label"]).dataobj)).tolist()) <= {0, 1, 2, 3}


# ----------------------------------------------------------------------------------------- the model's frame
SHIPPED = __import__("pathlib").Path(__file__).resolve().parents[2] / "bundle" / "models" / "model.pt"


@pytest.fixture(scope="module")
def brain_pair_1mm_and_2mm(tmp_path_factory):
    """The embedded MNI152 brain at 1 mm and a deformed copy, written at 1 mm and resampled to 2 mm."""
    from monai.data import MetaTensor
    from monai.transforms import Spacing

    from cir_monai.data import PairConfig, load_template, make_subject

    image, label, affine = load_template(spacing=1.0, shape=None)
    moved = make_subject(torch.from_numpy(image)[None, None], torch.from_numpy(label.astype(np.int64))[None, None],
                         seed=5, config=PairConfig(max_displacement=4.0))
    arrays = {"fixed": image, "moving": moved["image"][0, 0].numpy(), "moving_label": moved["label"][0, 0].numpy()}
    folders = {}
    for spacing in (1.0, 2.0):
        folder = tmp_path_factory.mktemp(f"pair_{spacing:g}mm")
        for key, data in arrays.items():
            mode = "nearest" if "label" in key else "bilinear"
            img = MetaTensor(torch.from_numpy(np.asarray(data, dtype=np.float32))[None], affine=torch.as_tensor(affine))
            if spacing != 1.0:
                img = Spacing(pixdim=spacing, mode=mode)(img)
            out = img[0].numpy().astype(np.int16 if "label" in key else np.float32)
            nib.save(nib.Nifti1Image(out, np.asarray(img.affine)), str(folder / f"{key}.nii.gz"))
        folders[spacing] = {key: str(folder / f"{key}.nii.gz") for key in arrays}
    return folders


def _ddf(path):
    return torch.from_numpy(np.moveaxis(np.asarray(nib.load(path).dataobj)[..., 0, :], -1, 0).copy()).float()[None]


def test_same_pair_at_1mm_and_2mm_gives_the_same_registration(tmp_path, brain_pair_1mm_and_2mm):
    """The network predicts in the model's 2 mm frame whatever the files' grid."""
    from cir_monai.metrics import mean_dice

    net = load_network(SHIPPED)
    assert net.frame["spacing"] == [2.0, 2.0, 2.0]
    out = {}
    for spacing, paths in brain_pair_1mm_and_2mm.items():
        out[spacing] = RegistrationRunner(net, [dict(paths, id="case")], lams=(1.0,),
                                          output_dir=tmp_path / f"{spacing:g}", progress=False).run()["case"][1.0]
    fine, coarse = nib.load(out[1.0]["ddf"]), nib.load(out[2.0]["ddf"])
    assert fine.shape[:3] == nib.load(brain_pair_1mm_and_2mm[1.0]["fixed"]).shape  # outputs at the files' 1 mm grid
    # the 2 mm run's field, in mm, resampled onto the 1 mm grid and back into its voxels
    from monai.data import MetaTensor
    from monai.transforms import ResampleToMatch

    coarse_mm = torch.einsum("ij,bj...->bi...", torch.as_tensor(coarse.affine[:3, :3]).float(), _ddf(out[2.0]["ddf"]))
    target = MetaTensor(torch.zeros(1, *fine.shape[:3]), affine=torch.as_tensor(fine.affine))
    coarse_on_fine = ResampleToMatch(mode="bilinear", padding_mode="border")(
        MetaTensor(coarse_mm[0], affine=torch.as_tensor(coarse.affine)), target)
    coarse_vox = torch.einsum("ij,bj...->bi...", torch.as_tensor(np.linalg.inv(fine.affine[:3, :3])).float(),
                              coarse_on_fine.as_tensor()[None].float())
    moving_label = torch.from_numpy(np.asarray(nib.load(brain_pair_1mm_and_2mm[1.0]["moving_label"]).dataobj)).float()
    warped_fine = torch.from_numpy(np.asarray(nib.load(out[1.0]["warped_label"]).dataobj)).long()[None, None]
    warped_coarse = Warp("nearest", "zeros")(moving_label[None, None], coarse_vox).round().long()
    agreement = mean_dice(warped_fine, warped_coarse).item()
    assert agreement >= 0.97, agreement
    # and the model does register: the labels move toward the fixed anatomy's
    before = mean_dice(moving_label[None, None].long(), warped_fine).item()
    assert before < agreement


def test_written_field_reproduces_warped_with_monai_warp(tmp_path, brain_pair_1mm_and_2mm):
    paths = brain_pair_1mm_and_2mm[1.0]
    out = RegistrationRunner(load_network(SHIPPED), [dict(paths, id="case")], lams=(4.0,), output_dir=tmp_path,
                             progress=False).run()["case"][4.0]
    moving = torch.from_numpy(np.asarray(nib.load(paths["moving"]).dataobj, dtype=np.float32))[None, None]
    expected = Warp("bilinear", "zeros")(moving, _ddf(out["ddf"]))[0, 0].numpy()
    warped = np.asarray(nib.load(out["warped"]).dataobj)
    assert np.abs(warped - expected).max() < 1e-4 * np.abs(expected).max()
    label = torch.from_numpy(np.asarray(nib.load(paths["moving_label"]).dataobj)).float()[None, None]
    expected_label = Warp("nearest", "zeros")(label, _ddf(out["ddf"]))[0, 0].round().numpy()
    assert (np.asarray(nib.load(out["warped_label"]).dataobj) == expected_label).mean() > 0.999


def test_itk_units_are_applied_by_itk_itself(write_synthetic_pair, tmp_path, model_file):
    """--ddf-units itk: ITK's WarpImageFilter with the written field reproduces warped.nii.gz."""
    import itk

    angle = np.radians(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-2.0, 2.0, 2.5])  # oblique and flipped
    affine[:3, 3] = [40.0, -30.0, 12.0]
    paths = write_synthetic_pair(tmp_path, affine)
    net = load_network(model_file)
    net.frame = dict(net.frame, spacing=None)  # predict on the file grid: the check is about the written units
    out = RegistrationRunner(net, [dict(paths, id="case")], lams=(0.5,), output_dir=tmp_path / "out", ddf_units="itk",
                             progress=False).run()["case"][0.5]
    field = itk.imread(out["ddf"], itk.Vector[itk.F, 3])  # ITK reads the components as LPS mm
    moving = itk.imread(paths["moving"], itk.F)
    image_type = itk.Image[itk.F, 3]
    warp = itk.WarpImageFilter[image_type, image_type, type(field)].New()
    warp.SetInput(moving)
    warp.SetDisplacementField(field)
    warp.SetOutputParametersFromImage(itk.imread(paths["fixed"], itk.F))
    warp.Update()
    by_itk = np.transpose(itk.array_from_image(warp.GetOutput()), (2, 1, 0))  # ITK arrays are (z, y, x)
    ours = np.asarray(nib.load(out["warped"]).dataobj)
    voxel = _ddf(RegistrationRunner(net, [dict(paths, id="v")], lams=(0.5,), output_dir=tmp_path / "vox",
                                    progress=False).run()["v"][0.5]["ddf"])
    assert voxel.abs().max() > 0.05  # a real field
    # where the sample point lies inside the image (ITK gives 0 outside, our Warp the border value)
    index = np.stack(np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij"))
    point = index + voxel[0].numpy()
    inside = ((point >= 0) & (point <= np.asarray(SHAPE).reshape(3, 1, 1, 1) - 1)).all(0)
    assert inside.mean() > 0.5
    scale = np.abs(ours).max()
    assert np.abs(by_itk - ours)[inside].max() < 1e-3 * scale
    # the RAS mm field differs from the ITK one exactly by the x/y sign
    mm = RegistrationRunner(net, [dict(paths, id="m")], lams=(0.5,), output_dir=tmp_path / "mm", ddf_units="mm",
                            progress=False).run()["m"][0.5]["ddf"]
    ras, lps = np.asarray(nib.load(mm).dataobj), np.asarray(nib.load(out["ddf"]).dataobj)
    assert np.allclose(ras * np.array([-1.0, -1.0, 1.0]), lps, atol=1e-6)


def test_runner_takes_its_refinement_from_the_inferer():
    """register.yaml passes its inferer (which holds the refinement steps); a second ``refine`` beside it is refused
    before any work, and a bad step count on the inferer is named."""
    from cir_monai.inferers import ConditionalInferer
    from cir_monai.networks import CLapIRN

    net = CLapIRN(3, start_channels=2)
    runner = RegistrationRunner(net, [], inferer=ConditionalInferer(refine=7, stacked=False), progress=False)
    assert runner.refine == 7
    with pytest.raises(ValueError, match="set the refinement steps on the inferer"):
        RegistrationRunner(net, [], refine=3, inferer=ConditionalInferer(stacked=False))
    with pytest.raises(ValueError, match="refine"):
        RegistrationRunner(net, [], inferer=ConditionalInferer(refine=-2, stacked=False))


def test_fine_steps_refine_the_written_field_at_the_fixed_grid(write_synthetic_pair, tmp_path, model_file):
    """--fine-steps: the same pair registered with 3 more steps at the fixed grid gives a different field that still
    warps the moving image as written (the outputs are made from it), and the summary line names the steps."""
    paths = write_synthetic_pair(tmp_path, np.diag([1.0, 1.0, 1.0, 1.0]))
    net = load_network(model_file)
    plain = RegistrationRunner(net, [dict(paths, id="case")], output_dir=tmp_path / "a", progress=False).run()
    runner = RegistrationRunner(net, [dict(paths, id="case")], output_dir=tmp_path / "b", progress=False, fine_steps=3)
    fine = runner.run()
    a = nib.load(plain["case"][1.0]["ddf"]).get_fdata()
    b = nib.load(fine["case"][1.0]["ddf"]).get_fdata()
    assert np.abs(a - b).max() > 1e-3
    ddf = torch.from_numpy(np.moveaxis(b[..., 0, :], -1, 0)).float()[None]
    moving = torch.from_numpy(nib.load(paths["moving"]).get_fdata()).float()[None, None]
    expected = Warp("bilinear", "zeros")(moving, ddf)[0, 0].numpy()
    assert np.abs(nib.load(fine["case"][1.0]["warped"]).get_fdata() - expected).max() < 1e-2 * moving.max().item()
    with pytest.raises(ValueError, match="fine_steps"):
        RegistrationRunner(net, [], fine_steps=1.5)
