"""The bundle's workflows through MONAI's ConfigWorkflow with tiny overrides (embedded data at 8 mm)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest
import torch
from monai.bundle import ConfigWorkflow

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bundle" / "configs"
TINY = dict(spacing=8.0, spatial_size=[24, 24, 24], val_interval=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("bundle")
    overrides = dict(
        TINY,
        bundle_root=str(work / "bundle"),
        output_dir=str(work / "runs"),
        dataset_dir=str(work / "data"),
        **{"network_def#start_channels": 2, "train#trainer#iterations": [2, 2, 2], "train#trainer#freeze_steps": 1,
           "checkpoint_every": 3, "num_validation": 1, "num_test": 2},
    )
    workflow = ConfigWorkflow(str(CONFIGS / "train.yaml"), workflow_type="train", run_id="training",
                              meta_file=str(CONFIGS / "metadata.json"), logging_file=str(CONFIGS / "logging.conf"),
                              **overrides)
    workflow.initialize()
    assert workflow.check_properties() in (None, [])
    result = workflow.run()
    workflow.finalize()
    (work / "bundle" / "models").mkdir(parents=True, exist_ok=True)
    assert result[0]["iterations"] == 6  # the run list's one item: 2 + 2 + 2 iterations, the trainer's own count
    (work / "runs" / "model.pt").replace(work / "bundle" / "models" / "model.pt")
    return work, overrides


def test_training_workflow(trained):
    work, _ = trained
    lines = [json.loads(line) for line in (work / "runs" / "metrics.jsonl").read_text().splitlines()]
    assert max(record["iteration"] for record in lines) == 6
    assert any("val_dice@1" in record for record in lines)
    assert (work / "runs" / "checkpoint.pt").is_file() and (work / "bundle" / "models" / "model.pt").is_file()


def test_evaluate_workflow(trained):
    work, overrides = trained
    workflow = ConfigWorkflow([str(CONFIGS / "train.yaml"), str(CONFIGS / "evaluate.yaml")], workflow_type="train",
                              run_id="evaluate", meta_file=str(CONFIGS / "metadata.json"),
                              **dict(overrides, eval_dir=str(work / "eval"), eval_lams=[0.5, 5.0]))
    workflow.initialize()
    workflow.run()
    summary = json.loads((work / "eval" / "summary.json").read_text())
    assert summary["pairs"] == 2 and list(summary["per_lam"]) == ["before", "0.5", "5"]
    assert (work / "eval" / "summary.md").is_file()


def test_two_process_gloo_evaluation(trained, tmp_path):
    """multi_gpu_evaluate.yaml under torchrun: 2 CPU processes each evaluate one of the 2 test pairs, rank 0 writes
    the summary, and its rows equal one process's (timings aside)."""
    work, overrides = trained
    single = ConfigWorkflow([str(CONFIGS / "train.yaml"), str(CONFIGS / "evaluate.yaml")], workflow_type="train",
                            run_id="evaluate", meta_file=str(CONFIGS / "metadata.json"),
                            **dict(overrides, eval_dir=str(tmp_path / "one"), eval_lams=[2.0]))
    single.initialize()
    single.run()
    torchrun = Path(sys.executable).with_name("torchrun")
    configs = [str(CONFIGS / name) for name in ("train.yaml", "evaluate.yaml", "multi_gpu_evaluate.yaml")]
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "monai.bundle", "run", "evaluate",
           "--config_file", json.dumps(configs), "--eval_dir", str(tmp_path / "two"), "--eval_lams", "[2.0]",
           *[arg for key, value in overrides.items() for arg in (f"--{key}", json.dumps(value))]]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    one, two = (json.loads((tmp_path / name / "summary.json").read_text()) for name in ("one", "two"))
    assert two["pairs"] == 2 and list(two["per_pair"]) == list(one["per_pair"])
    assert "rank 1: evaluating" in proc.stderr  # the second process did evaluate a pair
    for pair, rows in one["per_pair"].items():
        for a, b in zip(rows, two["per_pair"][pair]):
            for key in ("dice_mean", "jac_std", "folding_pct"):
                assert a[key] == pytest.approx(b[key], abs=1e-5), (pair, a["lam"], key)


def test_inference_command(trained):
    work, _ = trained
    pair = json.loads((work / "data" / "datalist.json").read_text())["test"][0]
    fixed, moving = work / "data" / pair["fixed"], work / "data" / pair["moving"]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "register", "--config_file", str(CONFIGS / "register.yaml"),
           "--bundle_root", str(work / "bundle"), "--output_dir", str(work / "inf"), "--fixed", str(fixed),
           "--moving", str(moving), "--moving_label", str(work / "data" / pair["moving_label"]), "--lams", "[0.1,4]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = sorted(p.relative_to(work / "inf").as_posix() for p in (work / "inf").rglob("*.nii.gz"))
    assert len(outputs) == 6 and any(o.endswith("lam_4/warped_label.nii.gz") for o in outputs)
    records = sorted((work / "inf").rglob("transform.json"))  # what `cir-monai apply` reads, per λ
    assert len(records) == 2 and json.loads(records[0].read_text())["units"] == "voxel"
    written = nib.load(str(next((work / "inf").rglob("lam_0.1/warped.nii.gz"))))
    assert (written.affine == nib.load(str(fixed)).affine).all()


def test_two_process_gloo_registration(trained, tmp_path):
    """multi_gpu_register.yaml under torchrun: 2 CPU processes register the 2 test pairs, one each, into the files
    register.yaml writes in one process, and rank 0 writes the summary; a second run finds them done."""
    import numpy as np

    work, _ = trained
    common = ["--bundle_root", str(work / "bundle"), "--dataset_dir", str(work / "data"), "--lams", "[2.0]",
              "--refine", "1"]
    one = [sys.executable, "-m", "monai.bundle", "run", "register", "--config_file", str(CONFIGS / "register.yaml"),
           "--output_dir", str(tmp_path / "one"), *common]
    proc = subprocess.run(one, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    configs = json.dumps([str(CONFIGS / "register.yaml"), str(CONFIGS / "multi_gpu_register.yaml")])
    two = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",
           "run", "register", "--config_file", configs, "--output_dir", str(tmp_path / "two"), *common]
    proc = subprocess.run(two, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert (summary["processes"], summary["registered"]) == (2, 2)
    assert sorted(p["rank"] for p in summary["pairs"].values()) == [0, 1]
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.nii.gz"))
    assert len(files) == 2 * 3 and files == sorted(p.relative_to(tmp_path / "two")
                                                   for p in (tmp_path / "two").rglob("*.nii.gz"))
    for name in files:
        a, b = (np.asarray(nib.load(tmp_path / side / name).dataobj) for side in ("one", "two"))
        assert np.allclose(a, b, atol=1e-4), name
    proc = subprocess.run(two, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0 and json.loads((tmp_path / "two" / "summary.json").read_text())["skipped"] == 2


def test_refine_defaults_and_override(trained):
    """Both workflows refine by the package's default (inference.yaml states it as a number, for MONAI Label), and
    register.yaml adds the default steps at the fixed grid as `cir-monai register` does; `--refine 0 --fine_steps 0`
    gives the network's field alone, which differs from the refined one."""
    import numpy as np
    from monai.bundle import ConfigParser

    from cir_monai.defaults import DEFAULT_FINE_STEPS, DEFAULT_REFINE

    for name in ("inference.yaml", "register.yaml"):
        parser = ConfigParser()
        parser.read_config(str(CONFIGS / name))
        assert parser.get_parsed_content("refine") == DEFAULT_REFINE, name
        if name == "register.yaml":
            assert parser.get_parsed_content("fine_steps") == DEFAULT_FINE_STEPS
    work, _ = trained
    pair = json.loads((work / "data" / "datalist.json").read_text())["test"][0]
    fields = {}
    for steps in (0, 5):
        out = work / f"refine_{steps}"
        cmd = [sys.executable, "-m", "monai.bundle", "run", "register", "--config_file", str(CONFIGS / "register.yaml"),
               "--bundle_root", str(work / "bundle"), "--output_dir", str(out),
               "--fixed", str(work / "data" / pair["fixed"]), "--moving", str(work / "data" / pair["moving"]),
               "--refine", str(steps), "--fine_steps", "0"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        fields[steps] = np.asarray(nib.load(str(next(out.rglob("ddf.nii.gz")))).dataobj)
    assert np.abs(fields[5] - fields[0]).max() > 1e-3


def test_two_process_gloo_training(tmp_path):
    """multi_gpu_train.yaml under torchrun: 2 CPU processes with DDP over gloo."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "monai.bundle",  # standalone: a free local port
           "run", "training", "--config_file",
           f"['{CONFIGS / 'train.yaml'}','{CONFIGS / 'multi_gpu_train.yaml'}']",
           "--output_dir", str(tmp_path / "runs"), "--dataset_dir", str(tmp_path / "data"),
           "--bundle_root", str(tmp_path / "bundle"), "--spacing", "8.0", "--spatial_size", "[24,24,24]",
           "--network_def#start_channels", "2", "--train#trainer#iterations", "[2,2,2]",
           "--train#trainer#freeze_steps", "1", "--log_every", "1", "--num_validation", "1",
           "--num_test", "1", "--val_interval", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    records = [json.loads(line) for line in (tmp_path / "runs" / "metrics.jsonl").read_text().splitlines()]
    assert sorted(r["iteration"] for r in records if "loss" in r) == [1, 2, 3, 4, 5, 6]  # rank 0 only
    assert "(2 process(es))" in proc.stdout + proc.stderr
    assert (tmp_path / "runs" / "model.pt").is_file() and (tmp_path / "runs" / "checkpoint.pt").is_file()
    assert (proc.stdout + proc.stderr).count("writing pairs: 100%") <= 2  # rank 0 prepared the data once


@pytest.mark.parametrize("extra, message", [
    (["--ckpt_path", "no/such/model.pt"], "model file not found: no/such/model.pt"),
    (["--lamz", "[4]"], "unknown option --lamz: no config file"),
])
def test_bundle_errors_name_the_problem(extra, message, tmp_path):
    """`python -m monai.bundle run` with a bad override fails with the library's message naming the problem (in
    MONAI's ordinary traceback: the bundle changes nothing in its host process), and writes nothing."""
    cmd = [sys.executable, "-m", "monai.bundle", "run", "register", "--config_file", str(CONFIGS / "register.yaml"),
           "--output_dir", str(tmp_path / "out"), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["inference.yaml", "register.yaml", "train.yaml"])
def test_a_bundle_leaves_its_host_process_alone(name, tmp_path, monkeypatch):
    """Initialising a workflow (as MONAI Label and Deploy do inside their own process) keeps sys.excepthook."""
    def host_hook(*args):  # the host application's own hook
        return None

    monkeypatch.setattr(sys, "excepthook", host_hook)
    workflow = ConfigWorkflow(str(CONFIGS / name), workflow_type="infer" if name != "train.yaml" else "train",
                              bundle_root=str(ROOT / "bundle"), output_dir=str(tmp_path / "out"),
                              dataset_dir=str(tmp_path / "data"))
    workflow.initialize()
    assert sys.excepthook is host_hook


def test_bundle_error_for_pairs_without_overlap(trained, tmp_path):
    """A λ outside the range and a pair with no physical overlap surface as the library's message."""
    import numpy as np

    from cir_monai.errors import user_message

    work, _ = trained
    far = np.eye(4)
    far[:3, 3] = 500.0
    axes = np.meshgrid(*[np.linspace(-1, 1, 10)] * 3, indexing="ij")
    volume = np.clip(1.0 - sum(a**2 for a in axes), 0, None).astype(np.float32)  # a smooth blob, an intensity image
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(tmp_path / "f.nii.gz"))
    nib.save(nib.Nifti1Image(volume, far), str(tmp_path / "m.nii.gz"))
    for overrides, expected in [
        (dict(fixed=str(tmp_path / "f.nii.gz"), moving=str(tmp_path / "m.nii.gz")), "do not overlap in physical space"),
        (dict(lams=[12.0]), "lam values must lie in [0, 10]"),
    ]:
        workflow = ConfigWorkflow(str(CONFIGS / "register.yaml"), workflow_type="infer", run_id="register",
                                  bundle_root=str(work / "bundle"), dataset_dir=str(work / "data"),
                                  output_dir=str(tmp_path / "out"), **overrides)
        with pytest.raises(Exception) as info:
            workflow.initialize()
            workflow.run()
        assert expected in (user_message(info.value) or ""), repr(info.value)


def test_training_as_monai_label_drives_it(tmp_path):
    """BundleTrainTask's overrides: image/label lists, max_epochs, handlers, device (a string), bundle_root; weights
    in models/model.pt.

    A copy of the bundle outside the repository (its atlas included), trained on 2 embedded test images paired
    to the atlas for 1 epoch (2 steps over the 3 levels: each level gets at least one).
    """
    import shutil

    import torch

    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "bundle", bundle, ignore=shutil.ignore_patterns("runs", "data", "eval", "model.*"))
    from cir_monai.data.prepare import prepare_embedded

    datalist = json.loads(Path(prepare_embedded(tmp_path / "data", 1, 2, 8.0, (24, 24, 24))).read_text())
    images = [{"image": str(tmp_path / "data" / p["fixed"]), "label": str(tmp_path / "data" / p["fixed_label"])}
              for p in datalist["test"]]
    from monai.bundle import ConfigParser

    # as BundleTrainTask does: the bundle's own handlers, with a CheckpointLoader of models/model.pt first
    handlers = ConfigParser.load_config_file(str(bundle / "configs" / "train.yaml"))["train"]["handlers"]
    from cir_monai.networks import CLapIRN

    torch.save(CLapIRN(3, start_channels=2, lite=True).state_dict(), bundle / "models" / "model.pt")  # train.yaml: lite
    handlers.insert(0, {"_target_": "CheckpointLoader", "load_path": str(bundle / "models" / "model.pt"),
                        "load_dict": {"model": "$@network"}, "strict": False})
    overrides = {
        "bundle_root": str(bundle), "train#dataset#data": images, "validate#dataset#data": images[:1],
        "train#trainer#max_epochs": 1, "train#handlers": handlers,
        "device": "cpu",  # a string: BundleTrainTask passes monailabel's name_to_device(request["device"])
        "spacing": 8.0, "spatial_size": [24, 24, 24], "network_def#start_channels": 2, "val_interval": 100,
    }
    loaded_at = (bundle / "models" / "model.pt").stat().st_mtime_ns
    workflow = ConfigWorkflow(str(bundle / "configs" / "train.yaml"), workflow_type="train", run_id="training",
                              meta_file=str(bundle / "configs" / "metadata.json"), **overrides)
    workflow.initialize()
    result = workflow.run()
    workflow.finalize()
    result = result[0] if isinstance(result, list) else result  # the `run` list's one item
    assert result["iterations"] == 3  # 1 epoch of 2 pairs, at least one step per level
    assert (bundle / "models" / "model.pt").stat().st_mtime_ns > loaded_at
    state = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert "levels.0.down.weight" in state  # a plain state dict, as the zoo ships
    assert (bundle / "runs" / "train" / "checkpoint.pt").is_file()
    records = [json.loads(line) for line in (bundle / "runs" / "train" / "metrics.jsonl").read_text().splitlines()]
    assert any("val_dice@1" in r for r in records)


def test_the_documented_switch_keeps_the_bundle_model(tmp_path):
    """`--train#trainer#bundle_model ""` (bundle/docs/README.md) writes no models/model.pt through MONAI's own `run`.

    MONAI's `run` drops overrides whose value is None, so `None` would leave the default (replace the bundle's
    model) in place; the empty string is the switch the docs give.
    """
    from monai.bundle.scripts import run

    overrides = dict(TINY, bundle_root=str(tmp_path / "bundle"), output_dir=str(tmp_path / "runs"),
                     dataset_dir=str(tmp_path / "data"),
                     **{"network_def#start_channels": 2, "train#trainer#iterations": [1, 1, 1],
                        "num_validation": 1, "num_test": 1, "val_interval": 100})
    run("training", config_file=str(CONFIGS / "train.yaml"), **overrides, **{"train#trainer#bundle_model": ""})
    assert (tmp_path / "runs" / "model.pt").is_file()
    assert not (tmp_path / "bundle" / "models").exists()


def test_the_supervised_overlay_trains_on_the_true_fields(tmp_path):
    """configs/scale/cpu_lite_supervised.yaml through MONAI's `run`: the embedded pairs carry their true fields and
    the end-point-error term is in every logged record; users' files have no true field, which is said up front."""
    from monai.bundle.scripts import run

    overlays = [str(CONFIGS / "train.yaml"), str(ROOT / "configs" / "scale" / "cpu_lite_supervised.yaml")]
    overrides = dict(TINY, bundle_root=str(tmp_path / "bundle"), output_dir=str(tmp_path / "runs"),
                     dataset_dir=str(tmp_path / "data"),
                     **{"network_def#start_channels": 2, "train#trainer#iterations": [1, 1, 2],
                        "num_validation": 1, "num_test": 1, "val_interval": 100, "log_every": 1,
                        "train#trainer#bundle_model": ""})
    run("training", config_file=overlays, **overrides)
    records = [json.loads(line) for line in (tmp_path / "runs" / "metrics.jsonl").read_text().splitlines()]
    fields = [r["field"] for r in records if "loss" in r]
    assert len(fields) == 4 and all(value > 0 for value in fields)
    image = str(tmp_path / "data" / "template" / "mni152_t1.nii.gz")
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps it; the CLI's error hook prints the cause alone
        run("training", config_file=overlays, **overrides,
            **{"train#dataset#data": [{"image": image}, {"image": image}], "pairing": "all"})
    assert "only the generated embedded pairs" in str(raised.value.__cause__)


def test_the_multiscale_overlay_gives_subjects_of_four_velocity_scales(tmp_path):
    """configs/scale/cpu_lite_multiscale.yaml (issue 32's training recipe) resolves, through MONAI's parser, to the
    embedded pairs with its four-scale subjects (not the shipped one-scale recipe), 64 of them, and makes pairs."""
    from monai.bundle import ConfigParser

    from cir_monai.data.pairs import PairConfig
    from cir_monai.data.synthesis import SubjectConfig

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.yaml"), str(ROOT / "configs" / "scale" / "cpu_lite_multiscale.yaml")])
    parser.update(dict(TINY, bundle_root=str(tmp_path / "bundle"), output_dir=str(tmp_path / "runs"),
                       dataset_dir=str(tmp_path / "data")))
    data = parser.get_parsed_content("train#dataset")
    assert isinstance(data.config, SubjectConfig) and data.config != PairConfig().subject(TINY["spatial_size"])
    assert data.config.velocity_sigmas == (12.8, 6.4, 3.2, 1.6) and data.config.random_amplitudes
    assert data.pool_size == 64
    item = data[0]
    assert item["fixed"].shape == (1, *TINY["spatial_size"]) and not torch.equal(item["fixed"], item["moving"])


def test_the_2d_overlay_trains_a_2d_model_on_slices(tmp_path):
    """configs/scale/cpu_2d.yaml (the 2D paper reproduction) through MONAI's `run`: a 2D network trained on axial
    slices of the generated pairs, validated on slices of the validation pairs, with a fresh Adam per level."""
    from monai.bundle.scripts import run

    from cir_monai.experiments import read_metrics
    from cir_monai.io import load_network

    overlays = [str(CONFIGS / "train.yaml"), str(ROOT / "configs" / "scale" / "cpu_2d.yaml")]
    overrides = dict(spacing=8.0, volume_size=[24, 24, 24], bundle_root=str(tmp_path / "bundle"),
                     output_dir=str(tmp_path / "runs"), dataset_dir=str(tmp_path / "data"),
                     **{"network_def#start_channels": 2, "train#trainer#iterations": [2, 2, 2],
                        "train#trainer#freeze_steps": 1, "train#dataset#pool_size": 2, "validate#dataset#per_pair": 2,
                        "num_validation": 1, "num_test": 1, "val_interval": 3, "log_every": 1})
    run("training", config_file=overlays, **overrides)
    model = load_network(tmp_path / "runs" / "model.pt")
    assert model.spatial_dims == 2 and model.config["start_channels"] == 2
    train, val = read_metrics(tmp_path / "runs")
    assert [r["iteration"] for r in train] == [1, 2, 3, 4, 5, 6] and [r["iteration"] for r in val] == [3, 6]
    assert 0.0 < val[-1]["val_dice@1"] <= 1.0
    assert not (tmp_path / "bundle" / "models").exists()  # the overlay leaves the bundle's model alone
