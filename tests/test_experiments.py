"""Many-model experiments (cir_monai.experiments): the training command and the metrics reader."""

from __future__ import annotations

import json

from cir_monai.experiments import read_metrics, training_command


def test_training_command_leaves_the_bundle_model_alone(tmp_path):
    cmd = training_command(["configs/variants/baseline.yaml"], tmp_path / "run", seed=3,
                           overrides={"train#trainer#lam_fixed": 0.1, "train#trainer#iterations": [1, 2, 3]})
    assert "--dataset_dir" not in cmd  # the configs' own (configs/scale/cpu_4mm.yaml has one)
    assert training_command([], tmp_path, dataset_dir=tmp_path / "d")[-1] == str(tmp_path / "d")
    configs = json.loads(cmd[cmd.index("--config_file") + 1])
    assert configs[0].endswith("configs/train.yaml") and configs[1].endswith("configs/variants/baseline.yaml")
    assert cmd[cmd.index("--train#trainer#bundle_model") + 1] == ""
    assert cmd[cmd.index("--seed") + 1] == "3" and cmd[cmd.index("--output_dir") + 1] == str(tmp_path / "run")
    assert cmd[cmd.index("--train#trainer#iterations") + 1] == "[1, 2, 3]"


def test_read_metrics_splits_and_keeps_the_last_record_of_an_iteration(tmp_path):
    records = [{"iteration": 10, "loss": 1.0}, {"iteration": 20, "loss": 0.5},
               {"iteration": 20, "val_dice@1": 0.6}, {"iteration": 10, "loss": 0.9},  # a resumed run rewrote 10
               {"iteration": 5, "val_dice@1": 0.4}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    train, val = read_metrics(tmp_path)
    assert train == [{"iteration": 10, "loss": 0.9}, {"iteration": 20, "loss": 0.5}]
    assert [v["val_dice@1"] for v in val] == [0.4, 0.6]
    assert read_metrics(tmp_path / "missing") == ([], [])


def test_late_slope_is_per_thousand_iterations_over_the_last_stretch():
    import numpy as np

    from cir_monai.experiments import late_slope

    rising = [{"iteration": k, "val_dice@1": 0.5 + 0.002 * k / 1000} for k in range(1000, 21000, 1000)]
    slope, error = late_slope(rising, "val_dice@1", last=5000)
    assert slope == np.float64(slope) and abs(slope - 0.002) < 1e-12 and error < 1e-9
    flat = [{"iteration": k, "val_dice@1": 0.7 + (0.01 if k % 2000 else -0.01)} for k in range(1000, 21000, 1000)]
    slope, error = late_slope(flat, "val_dice@1", last=6000)  # the last 6 records: noise around a flat line
    assert abs(slope) < 2 * error
    assert np.isnan(late_slope(rising[:2], "val_dice@1")[0])


def test_diverged_is_a_run_below_no_registration_at_every_lambda():
    """The 2D reproduction's CIR-CM seed 0 (lr 1e-3) ended at Dice 0.18 against 0.48 unregistered: left out."""
    from cir_monai.experiments import diverged

    before = {"iteration": 28000, "val_dice_before": 0.48}
    assert diverged([{**before, "val_dice@0.1": 0.184, "val_dice@1": 0.183, "val_dice@4": 0.184}])
    assert not diverged([{**before, "val_dice@0.1": 0.72, "val_dice@1": 0.70, "val_dice@4": 0.66}])
    assert not diverged([{**before, "val_dice@0.1": 0.47, "val_dice@1": 0.50}])  # one λ above: not a collapse
    # a model that has barely moved yet (CIR-CM's first validation) is not a collapse either
    assert not diverged([{**before, "val_dice@0.1": 0.4796, "val_dice@1": 0.4795, "val_dice@4": 0.4792}])
    assert not diverged([]) and not diverged([{"iteration": 1, "val_dice@1": 0.1}])  # nothing to compare with
