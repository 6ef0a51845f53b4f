# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The ``cir-monai`` command (fire): register, sweep λ, evaluate, train, convert.

Installed as the console script ``cir-monai`` and runnable as ``python -m cir_monai``.
Each subcommand is thin over the library (:mod:`cir_monai.engines`, :mod:`cir_monai.sweep`)
and the bundle's workflows (``bundle/configs``). ``cir-monai SUBCOMMAND --help`` explains one.

Bad input (a missing or non-image file, 2D vs 3D, λ outside [0, 10], an unwritable output
folder, an unknown bundle override of ``evaluate``/``train``) ends with one line
``cir-monai: error: ...`` naming the problem and exit status 1 (an unknown flag of
``register``/``sweep``/``convert``: exit status 2, before any work). Outputs are written to a hidden staging folder beside ``--out`` and moved
into place only when the command succeeds, so a failed run leaves nothing half-written.
``CIR_MONAI_TRACEBACK=1`` shows full tracebacks.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from cir_monai.data.embedded import DEFAULT_SHAPE, DEFAULT_SPACING
from cir_monai.defaults import (DEFAULT_LAMS, bundle_configs, bundle_root, default_device, default_model, embedded_dir,
                                installed)

__all__ = ["main", "Commands", "parse_lams", "staged_output"]

#: the configs/ overlays (variants, data sets, scales), installed with the package like the bundle
OVERLAYS = installed("configs")


def parse_lams(value) -> list[float]:
    """λ values from the command line: ``1``, ``0.1,1,4`` (fire gives a tuple), ``"[0.1, 1]"``.

    Raises:
        ValueError: not a number or a list of numbers (the value in the message).
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = ast.literal_eval(text if text.startswith(("[", "(")) else f"[{text}]")
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"--lam/--lams must be numbers such as 1 or 0.1,1,4, got {value!r}") from err
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        lams = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise ValueError(f"--lam/--lams must be numbers such as 1 or 0.1,1,4, got {value!r}") from err
    if not lams:
        raise ValueError("--lam/--lams needs at least one value")
    return lams


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, fresh: bool = False) -> Iterator[Path]:
    """A hidden folder beside ``out`` to write into; its files move into ``out`` only when the block succeeds.

    Files are merged one by one: an existing ``out`` keeps its other files and folders (so
    registering at λ = 1 and then at λ = 4 into one folder keeps both), files of the same
    name are replaced. With ``fresh=True`` (a report folder: sweep, evaluate) an ``out`` that
    holds an earlier result of this tool (``summary.json``) is replaced as a whole, so no stale
    per-pair tables are left beside the new ones. On an exception the staging folder is removed
    and ``out`` is untouched.

    Raises:
        OSError: ``out`` (or its parent) cannot be created or written (the folder in the message).
    """
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {out} exists and is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as err:
        raise OSError(f"cannot write to output folder {out}: {err.strerror or err}") from err
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; results should be readable like any folder
    if out.exists() and not os.access(out, os.W_OK):
        shutil.rmtree(staging, ignore_errors=True)
        raise PermissionError(f"cannot write to output folder {out}: permission denied")
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists() and fresh and (out / "summary.json").is_file():
        shutil.rmtree(out)
    if not out.exists():
        os.replace(staging, out)
        return
    for item in sorted(staging.rglob("*")):
        if item.is_dir():
            continue
        target = out / item.relative_to(staging)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(item, target)
    shutil.rmtree(staging, ignore_errors=True)


def _device(device: str | None):
    import torch

    if device is None:
        return default_device()
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"--device must be cpu or cuda, got {device!r}") from err


def _model(model: str | None, device) -> tuple:
    from cir_monai.engines import load_network

    path = Path(model).expanduser() if model else default_model()
    if model is None and not path.is_file():
        raise FileNotFoundError(f"no default model at {path}: train one (`cir-monai train`) and pass --model PATH")
    return load_network(path, device), path


def _pairs(data: str, split: str) -> list[dict]:
    from cir_monai.data import load_pairs
    from cir_monai.workflows import prepared_pairs

    if data == "embedded":
        return prepared_pairs(embedded_dir(), split, DEFAULT_SPACING, DEFAULT_SHAPE)
    return load_pairs(Path(data).expanduser(), split=split)


def _overlays(config) -> list[str]:
    """Config overlays: paths, or names under ``configs/`` such as ``variants/cir_cm``."""
    if not config:
        return []
    items = [config] if isinstance(config, str) else list(config)
    out = []
    for item in items:
        path = Path(item).expanduser()
        if not path.is_file():
            named = OVERLAYS / (item if str(item).endswith(".yaml") else f"{item}.yaml")
            if not named.is_file():
                raise FileNotFoundError(f"config overlay not found: {item} (a file, or a name such as variants/cir_cm)")
            path = named
        out.append(str(path))
    return out


def _bundle_run(files: list[str], run_id: str, overrides: dict) -> object:
    from monai.bundle import ConfigWorkflow

    from cir_monai.overrides import check_override_keys

    check_override_keys(files, [k for k in overrides])
    overrides.setdefault("bundle_root", str(bundle_root()))
    workflow = ConfigWorkflow(files if len(files) > 1 else files[0], workflow_type="train", run_id=run_id,
                              meta_file=str(bundle_configs() / "metadata.json"),
                              logging_file=str(bundle_configs() / "logging.conf"), **overrides)
    workflow.initialize()
    result = workflow.run()
    workflow.finalize()
    return result


def _reserved(overrides: dict, names: dict[str, str]) -> None:
    """Reject bundle overrides that a named option of the command sets (they would be overwritten)."""
    for key, option in names.items():
        if key in overrides:
            raise ValueError(f"use {option} instead of --{key} (the command sets {key} from {option})")


class Commands:
    """cir-monai: conditional deformable registration (cLapIRN): one model, any smoothness λ at inference.

    λ weighs smoothness against similarity (Mok & Chung, MICCAI 2021): 0 = most accurate,
    10 = smoothest. `sweep` finds the best λ for your data in minutes; `register` applies it.
    """

    def register(self, fixed: str, moving: str, lam="1.0", out: str = "runs/register", moving_label: str | None = None,
                 fixed_label: str | None = None, model: str | None = None, device: str | None = None,
                 ddf_units: str = "voxel", png: bool = False, frame: str = "model", inverse: bool = False,
                 affine: bool = False):
        """Register MOVING onto FIXED at one or more λ; NIfTI outputs in the fixed image's space.

        Writes OUT/<pair>/lam_<λ>/{warped.nii.gz, ddf.nii.gz[, warped_label.nii.gz][, overlay.png]}.
        Images of any size and spacing (NIfTI or any format ITK reads); the moving image is
        resampled onto the fixed grid when they differ. The network predicts in the frame the
        model was trained in (the shipped model: 2 mm) and the field is brought back to the
        fixed grid, where the moving image and labels are warped at full resolution.
        Several λ share one preprocessing pass.

        Args:
            fixed: the fixed (target) image file.
            moving: the moving (source) image file.
            lam: λ, or several (0.1,1,4), or a `sweep` output folder to use its λ*. Default 1.
            out: output folder (created; files of the same name replaced).
            moving_label: a label map of the moving image, warped with nearest neighbour.
            fixed_label: a label map of the fixed image (checked against the fixed image's shape).
            model: a model.pt (this project) or an authors' .pth; default: the bundle's shipped model.
            device: cpu or cuda (default: cuda when available).
            ddf_units: voxel (default; MONAI Warp convention), itk (LPS mm: what ITK, ANTs'
                antsApplyTransforms and 3D Slicer apply) or mm (world RAS displacement).
            png: also write overlay.png (fixed over moving, before and after) per λ.
            frame: model (default: predict at the model's training spacing) or input (predict on
                the fixed image's own grid).
            affine: align MOVING affinely first (ITK, mutual information, 3 levels): ddf.nii.gz is then
                the total field (affine and deformable composed) and affine.tfm the affine (ITK/ANTs/Slicer).
            inverse: also write ddf_inverse.nii.gz, the inverse field (fixed-point inversion of the
                DDF), which maps the fixed image onto the moving one; prints its composition residual.
        """
        from cir_monai.data.datalist import check_pairs
        from cir_monai.engines import RegistrationRunner
        from cir_monai.engines.inference import DDF_UNITS
        from cir_monai.runtime import tune_cpu_allocator
        from cir_monai.sweep import read_lam_star

        tune_cpu_allocator()
        if isinstance(lam, str) and Path(lam).expanduser().exists():
            lams = [read_lam_star(Path(lam).expanduser())]
        else:
            try:
                lams = parse_lams(lam)
            except ValueError as err:
                raise ValueError(f"--lam must be numbers such as 1 or 0.1,1,4, or a `cir-monai sweep` output folder; "
                                 f"{lam!r} is neither (no such folder)") from err
        if ddf_units not in DDF_UNITS:
            raise ValueError(f"--ddf-units must be one of {', '.join(DDF_UNITS)}, got {ddf_units!r}")
        if frame not in ("model", "input"):
            raise ValueError(f"--frame must be model or input, got {frame!r}")
        pair = {"fixed": fixed, "moving": moving, "moving_label": moving_label, "fixed_label": fixed_label}
        pairs = check_pairs([{k: v for k, v in pair.items() if v}], "the FIXED/MOVING pair")
        dev = _device(device)
        network, model_path = _model(model, dev)
        with staged_output(out) as staging:  # the runner checks λ against the model's range
            results = RegistrationRunner(network, pairs, lams=lams, output_dir=staging, ddf_units=ddf_units,
                                         device=dev, figures=png, frame=frame, progress=False, inverse=inverse,
                                         affine=affine).run()
        for pair_id, per_lam in results.items():
            for value, paths in per_lam.items():
                extra = (f"; inverse residual {paths['inverse_residual_mean']:.3f} voxel mean, "
                         f"{paths['inverse_residual_max']:.2f} max" if inverse else "")
                print(f"λ = {value:g}: {Path(out) / pair_id / f'lam_{value:g}'} ({paths['seconds']:.1f} s{extra})")

    def sweep(self, data: str = "embedded", lams=DEFAULT_LAMS, out: str = "runs/sweep",
              max_folding: float = 0.1, rule: str = "max_dice", tolerance: float = 0.01, split: str = "validation",
              model: str | None = None, device: str | None = None, pixdim: float | None = None):
        """Find λ*: register every labelled pair at every λ with one model and pick the best λ.

        Writes OUT/summary.md (report with tables and pictures), summary.json, one CSV per pair,
        tradeoff.png (Dice, std|J|, % folding vs λ, λ* marked), lambda_panel.png (the paper's
        Fig. 2 for the first pair), lam_star.json (read by `register --lam OUT`) and
        register_lam.yaml (an overlay for the bundle's register workflow).

        Args:
            data: a JSON datalist, a Learn2Reg/neurite-OASIS folder, a folder with datalist.json,
                or "embedded" (default: the built-in MNI152 validation pairs). Pairs need labels.
            lams: the λ values to try (default 0,0.1,0.5,1,2,4,8,10).
            out: output folder.
            max_folding: only λ whose mean % of voxels with det J ≤ 0 is at most this qualify.
            rule: max_dice (highest mean Dice, default) or smoothest (largest λ within
                --tolerance Dice of the best).
            tolerance: Dice tolerance of the smoothest rule.
            split: the datalist's list to use (default validation).
            model: model file (default: the bundle's shipped model).
            device: cpu or cuda.
            pixdim: resample to this spacing in mm first (default: the fixed image's grid).
        """
        from cir_monai.engines.inference import checked_lams
        from cir_monai.runtime import tune_cpu_allocator
        from cir_monai.sweep import RULES, run_sweep

        tune_cpu_allocator()
        values = parse_lams(lams)
        if rule not in RULES:
            raise ValueError(f"--rule must be one of {', '.join(RULES)}, got {rule!r}")
        if float(max_folding) < 0:
            raise ValueError(f"--max-folding must be ≥ 0 (% of voxels), got {max_folding}")
        if float(tolerance) < 0:
            raise ValueError(f"--tolerance must be ≥ 0 (Dice), got {tolerance}")
        dev = _device(device)
        network, model_path = _model(model, dev)
        checked_lams(values, network)  # before the data are built (the evaluator would check after)
        pairs = _pairs(str(data), split)
        with staged_output(out, fresh=True) as staging:
            summary = run_sweep(network, pairs, staging, lams=values, max_folding=float(max_folding), rule=rule,
                                tolerance=float(tolerance), model=str(model_path), data=str(data), device=dev,
                                pixdim=pixdim, shown_dir=out)
            text = (staging / "summary.md").read_text()
        print("\n".join(line for line in text.splitlines() if line.startswith("|") or line.startswith("**λ")))
        print(f"λ* = {summary['lam_star']:g}; report: {Path(out) / 'summary.md'}")

    def evaluate(self, model: str | None = None, lams=DEFAULT_LAMS, out: str = "runs/evaluate",
                 data: str = "embedded", split: str = "test", config=(), **overrides):
        """Evaluate a model on labelled pairs at a list of λ (the bundle's evaluate workflow).

        Runs bundle/configs/train.yaml + evaluate.yaml (+ --config overlays) with the same
        overrides `python -m monai.bundle run evaluate` takes (e.g. --spatial_size "[64,80,64]").
        Writes OUT/summary.md (tables and pictures), summary.json and one CSV per pair.

        Args:
            model: model file (default: the bundle's shipped model).
            lams: λ values (default the paper's list 0,0.1,0.5,1,2,4,8,10).
            out: output folder.
            data: "embedded" (the built-in test pairs) or a datalist / data folder.
            split: the list of a datalist given with --data to use (default test).
            config: overlay file(s) or names under configs/, e.g. scale/paper_1mm (several: comma-separated).
            overrides: further bundle config overrides (--key value).
        """
        values = parse_lams(lams)
        path = Path(model).expanduser() if model else default_model()
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}" + ("" if model else " (pass --model PATH)"))
        _reserved(overrides, {"ckpt_path": "--model", "eval_lams": "--lams", "eval_dir": "--out"})
        files = [str(bundle_configs() / "train.yaml"), str(bundle_configs() / "evaluate.yaml"), *_overlays(config)]
        overrides.setdefault("dataset_dir", str(embedded_dir()))
        if data != "embedded":
            overrides["test_pairs"] = f"$cir_monai.data.load_pairs({str(Path(data).expanduser())!r}, split={split!r})"
        with staged_output(out, fresh=True) as staging:
            _bundle_run(files, "evaluate", dict(overrides, ckpt_path=str(path), eval_lams=values,
                                                eval_dir=str(staging)))
            text = (staging / "summary.md").read_text()
        print("\n".join(line for line in text.splitlines() if line.startswith("|")))
        print(f"report: {Path(out) / 'summary.md'}")

    def train(self, config=(), out: str = "runs/train", init_from: str | None = None, **overrides):
        """Train cLapIRN with the bundle's training workflow (resumes from OUT/checkpoint.pt).

        Same as `python -m monai.bundle run training --config_file bundle/configs/train.yaml`
        with --config overlays and overrides, e.g.
        `cir-monai train --config variants/cir_cm,scale/cpu_small --val_interval 50` (several overlays:
        comma-separated; a repeated --config keeps only the last).
        The model is written to OUT/model.pt; re-running continues where it stopped.

        Args:
            config: overlay file(s) or names under configs/ (variants/..., data/..., scale/...),
                comma-separated.
            out: the run folder (checkpoints, model.pt, metrics.jsonl, TensorBoard).
            init_from: fine-tune: start from this model (a model.pt of this project or an authors'
                .pth; the network config must match it, e.g. --network_def#start_channels 4
                --network_def#lite true for the authors' lite model). Ignored when OUT holds a checkpoint.
            overrides: bundle config overrides (--key value), e.g. --train#trainer#iterations "[300,200,40]".
        """
        _reserved(overrides, {"output_dir": "--out"})
        if init_from is not None:
            path = Path(init_from).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"--init-from: model file not found: {path}")
            overrides["init_from"] = str(path)
        files = [str(bundle_configs() / "train.yaml"), *_overlays(config)]
        overrides.setdefault("dataset_dir", str(embedded_dir()))
        overrides.setdefault("train#trainer#bundle_model", None)  # never overwrite the shipped models/model.pt
        _bundle_run(files, "training", dict(overrides, output_dir=str(out)))
        print(f"model: {Path(out) / 'model.pt'}")

    def convert(self, checkpoint: str, out: str = "model.pt"):
        """Convert an authors' cLapIRN checkpoint (.pth) into this project's model file.

        The result loads with `--model` everywhere and with the bundle (ckpt_path).

        Args:
            checkpoint: the authors' released .pth file.
            out: the model file to write (atomically).
        """
        from cir_monai.convert import load_official_checkpoint
        from cir_monai.engines.checkpoint import save_checkpoint

        net = load_official_checkpoint(Path(checkpoint).expanduser())
        target = Path(out).expanduser()
        if target.is_dir():
            raise IsADirectoryError(f"--out {target} is a folder; give a file name such as model.pt")
        try:
            save_checkpoint({"model": net.state_dict(), "network": net.config, "source": str(checkpoint)}, target)
        except OSError as err:
            raise OSError(f"cannot write {target}: {err.strerror or err}") from err
        print(f"{target}: {net.config}")


def _unknown_flag(argv: Sequence[str]) -> str | None:
    """A message for the first ``--flag`` the subcommand does not take, or None.

    fire would call the subcommand first and complain about the flag afterwards, after the work
    (and its outputs); this check runs before anything.
    """
    import inspect

    if not argv or not hasattr(Commands, argv[0]) or argv[0].startswith("_"):
        return None
    params = inspect.signature(getattr(Commands, argv[0])).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None  # evaluate / train forward other flags to the bundle, checked there
    for token in argv[1:]:
        if token == "--":
            break
        if token.startswith("--") and len(token) > 2:
            name = token[2:].split("=", 1)[0].replace("-", "_")
            if name not in params and name not in ("help", "h"):
                options = ", ".join("--" + n.replace("_", "-") for n in params if n != "self")
                return f"unknown option {token.split('=', 1)[0]} for `{argv[0]}` (options: {options})"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cir-monai`` / ``python -m cir_monai``; returns the exit status."""
    import fire

    from cir_monai.errors import user_message

    args = list(sys.argv[1:] if argv is None else argv)
    problem = _unknown_flag(args)
    if problem:
        print(f"cir-monai: error: {problem}", file=sys.stderr)
        return 2
    try:
        fire.Fire(Commands, command=args, name="cir-monai")
    except KeyboardInterrupt:
        print("cir-monai: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - user errors become one line, bugs keep their traceback
        message = None if os.environ.get("CIR_MONAI_TRACEBACK") else user_message(err)
        if message is None:
            raise
        print(f"cir-monai: error: {message}", file=sys.stderr)
        return 1
    return 0
