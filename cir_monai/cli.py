# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The ``cir-monai`` command (fire): register (one pair or many), apply, sweep λ, evaluate, train, convert.

Installed as the console script ``cir-monai`` and runnable as ``python -m cir_monai``.
Each subcommand parses its arguments, calls one library function and prints the result:
``register`` → :func:`cir_monai.engines.inference.register_files`, ``batch`` →
:func:`cir_monai.engines.batch.register_many`, ``sweep`` → :func:`cir_monai.sweep.sweep`,
``evaluate`` / ``train`` → :func:`cir_monai.workflows.evaluate` / :func:`~cir_monai.workflows.train` (the
bundle's workflows), ``convert`` → :func:`cir_monai.io.models.convert_checkpoint`.
``cir-monai SUBCOMMAND --help`` explains one.

Bad input (a missing or non-image file, 2D vs 3D, λ outside [0, 10], an unwritable output
folder, an unknown bundle override of ``evaluate``/``train``) ends with one line
``cir-monai: error: ...`` naming the problem and exit status 1 (an unknown flag of
``register``/``sweep``/``convert``: exit status 2, before any work). Outputs are written to a hidden staging
folder beside ``--out`` and moved into place only when the command succeeds, so a failed run leaves nothing
half-written (:func:`cir_monai.atomic.staged_folder`).
``CIR_MONAI_TRACEBACK=1`` shows full tracebacks.
"""

from __future__ import annotations

import ast
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cir_monai.defaults import DEFAULT_FINE_STEPS, DEFAULT_LAMS, DEFAULT_REFINE, MAX_FOLDING_PCT

__all__ = ["main", "Commands", "parse_lams"]

#: when ``main`` started (``time.perf_counter``): the commands' "done in" lines count from here, imports included
_START: float | None = None


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
            raise ValueError(f"--lam/--lams must be numbers such as 1 or 0.1,1,4 (`register`: or a `cir-monai sweep` "
                             f"output folder), got {value!r}") from err
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        lams = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise ValueError(f"--lam/--lams must be numbers such as 1 or 0.1,1,4, got {value!r}") from err
    if not lams:
        raise ValueError("--lam/--lams needs at least one value")
    return lams


def _print_table(report: Path, bold: bool = False) -> None:
    """The table rows (and, with ``bold``, the λ* line) of a written ``summary.md``."""
    lines = report.read_text().splitlines()
    print("\n".join(line for line in lines if line.startswith("|") or (bold and line.startswith("**λ"))))


class Commands:
    """cir-monai: conditional deformable registration (cLapIRN): one model, any smoothness λ at inference.

    λ weighs smoothness against similarity (Mok & Chung, MICCAI 2021): 0 = most accurate,
    10 = smoothest. `sweep` finds the best λ for your data in minutes; `register` applies it.
    """

    def register(self, fixed: str, moving: str, lam="1.0", out: str = "runs/register", moving_label: str | None = None,
                 fixed_label: str | None = None, model: str | None = None, device: str | None = None,
                 ddf_units: str = "voxel", png: bool = False, frame: str = "model", inverse: bool = False,
                 affine: bool = False, refine: int | None = None, fine_steps: int | None = None,
                 threads: int | None = None):
        """Register MOVING onto FIXED at one or more λ; NIfTI outputs in the fixed image's space.

        Writes OUT/<pair>/pair.json (which files) and OUT/<pair>/lam_<λ>/{warped.nii.gz, ddf.nii.gz, transform.json
        (what `cir-monai apply` reads)[, warped_label.nii.gz][, ddf_inverse.nii.gz][, overlay.png]}, and with
        --affine OUT/<pair>/affine.tfm. Options may be spelt with - or _ (--moving-label, --moving_label).
        Images of any size and spacing (NIfTI or any format ITK reads). The network predicts in
        the frame the model was trained in (the shipped model: 2 mm), the field is brought back to
        the fixed grid, and the moving image and labels are sampled through it once, at their full
        resolution.
        Several λ share one preprocessing pass. Progress goes to stderr (the refinement's steps with an ETA, one
        line per written λ); the last lines give each λ's folder and the total time.

        Input: single-channel 3D brain MRI (the shipped model: skull-stripped T1, roughly aligned, or use --affine).
        A label map, a binary mask, a 4D series or a CT in Hounsfield units given as FIXED or MOVING is refused
        with one line saying so.

        Args:
            fixed: the fixed (target) image file.
            moving: the moving (source) image file.
            lam: λ, or several (0.1,1,4), or a `sweep` output folder to use its λ* (and, unless --refine /
                --fine-steps are given, the refinement the sweep chose it for). Default 1.
            out: output folder (created; files of the same name replaced).
            moving_label: a label map of the moving image, warped with nearest neighbour.
            fixed_label: a label map of the fixed image (checked against the fixed image's shape).
            model: a model.pt (this project) or an authors' .pth; default: the bundle's shipped model.
            device: cpu or cuda (default: cuda when available).
            ddf_units: voxel (default; MONAI Warp convention), itk (LPS mm: what ITK, ANTs'
                antsApplyTransforms and 3D Slicer apply) or mm (world RAS displacement).
            png: also write overlay.png (fixed over moving, before and after the deformable step) per λ.
            frame: model (default: predict at the model's training spacing) or input (predict on
                the fixed image's own grid).
            affine: align MOVING affinely first (ITK, mutual information, 3 levels): ddf.nii.gz is then
                the total field (affine and deformable composed) and affine.tfm the affine (ITK/ANTs/Slicer).
            inverse: also write ddf_inverse.nii.gz, the inverse field (Newton inversion of the DDF, on the fixed
                grid), which maps the fixed image onto the moving one (`cir-monai apply --inverse`); prints its
                composition residual's median, 99th percentile and max in voxels over the fixed brain (large only
                where the field folds, where no inverse exists).
            refine: refine the network's field for this pair by N steps of its own training objective at the same
                λ (Adam, in the model's frame); 0 gives the network's field alone (fastest, with --fine-steps 0).
                Default 20, or the sweep's with --lam SWEEP_FOLDER.
            fine_steps: after the refinement, N more steps on the fixed image's own grid (e.g. 1 mm), cropped to the
                brain. Default 5: +0.011 to +0.016 Dice on the held-out groups over the 20 frame steps alone, ~6 s on a
                1 mm brain (2 CPU threads); its time and memory grow with the fixed image's voxels in the brain's
                box. 10 gains ~0.003 more on the hard group; 0 skips it (docs/results.md). With --lam SWEEP_FOLDER,
                the sweep's.
            threads: CPU threads (default: $CIR_MONAI_THREADS, else the usable cores not busy with other work:
                the process's affinity and cgroup quota, less the 1-minute load average).
        """
        from cir_monai.engines.inference import register_files, residual_text
        from cir_monai.runtime import cpu_threads, tune_cpu_allocator
        from cir_monai.sweep import read_sweep

        started = _START if _START is not None else time.perf_counter()
        tune_cpu_allocator()
        folder = Path(lam).expanduser() if isinstance(lam, str) else None
        if folder is not None and not folder.exists() and (os.sep in lam or lam.startswith(("~", "."))):
            raise FileNotFoundError(f"--lam {lam}: no such sweep folder (or give λ values such as 1 or 0.1,1,4)")
        if folder is not None and folder.exists():
            chosen = read_sweep(folder)
            lams = [chosen["lam_star"]]
            for name, given in (("refine", refine), ("fine_steps", fine_steps)):
                what = "refinement steps" if name == "refine" else "steps at the fixed grid"
                if given is not None and int(given) != chosen[name]:
                    print(f"note: λ* = {chosen['lam_star']:g} was chosen for {chosen[name]} {what}; "
                          f"registering with {given}", file=sys.stderr)
            refine = chosen["refine"] if refine is None else refine
            fine_steps = chosen["fine_steps"] if fine_steps is None else fine_steps
            print(f"λ* = {lams[0]:g} from {folder} (chosen for {chosen['refine']} refinement steps and "
                  f"{chosen['fine_steps']} at the fixed grid)", file=sys.stderr)
        else:
            lams = parse_lams(lam)
        refine = DEFAULT_REFINE if refine is None else refine
        fine_steps = DEFAULT_FINE_STEPS if fine_steps is None else fine_steps
        with cpu_threads(threads):
            results = register_files(fixed, moving, lams, out, moving_label=moving_label, fixed_label=fixed_label,
                                     model=model, device=device, ddf_units=ddf_units, figures=png, frame=frame,
                                     inverse=inverse, affine=affine, refine=refine, fine_steps=fine_steps)
        for value, record in results.items():
            extra = f"; inverse residual (voxels) {residual_text(record)}" if inverse else ""
            print(f"λ = {value:g}: {record['folder']} ({record['seconds']:.1f} s{extra})")
        print(f"done in {time.perf_counter() - started:.1f} s (start-up, reading, {len(lams)} λ and writing)")

    def batch(self, data: str, lam="1.0", out: str = "runs/batch", split: str = "test", workers: int = 1,
              model: str | None = None, device: str | None = None, ddf_units: str = "voxel", png: bool = False,
              frame: str = "model", inverse: bool = False, affine: bool = False, refine: int = DEFAULT_REFINE,
              fine_steps: int = DEFAULT_FINE_STEPS, threads: int | None = None):
        """Register many pairs (a study to a template): `register`'s outputs for each pair of a datalist, the model
        loaded once, the next pairs read while one is registered, the last written while the next is registered.

        Writes OUT/<pair id>/... (as `register`) and OUT/summary.json, OUT/summary.md (status, time and folding per
        pair and λ; pairs per hour). Each pair's folder appears whole or not at all; run the same command again to
        resume (finished pairs are skipped); a pair that fails is reported and the others go on (exit status 1
        at the end when any failed).
        Across processes, GPUs or machines: `torchrun --nproc_per_node=N -m cir_monai batch DATA ...` (each
        process its share of the pairs, one summary; docs/usage.md, "Many pairs", for several machines).

        Args:
            data: a JSON datalist (pairs {"fixed", "moving"[, "moving_label", "fixed_label", "id"]}, or images with
                a "pairing": "atlas" / "all"), a Learn2Reg or neurite-OASIS folder, or a folder with datalist.json.
            lam: λ, or several (0.1,1,4). Default 1.
            out: output folder.
            split: which list of a datalist (default "test").
            workers: processes reading and preprocessing the next pairs ahead (0: none). Default 1.
            model, device, ddf_units, png, frame, inverse, affine, refine, fine_steps: as `register`.
            threads: CPU threads per process (default: as `register`, shared among the processes of one machine
                under torchrun).
        """
        from cir_monai.data import load_pairs
        from cir_monai.engines.batch import register_many
        from cir_monai.runtime import cpu_threads, tune_cpu_allocator, usable_cpus

        started = _START if _START is not None else time.perf_counter()
        tune_cpu_allocator()
        lams = parse_lams(lam)
        pairs = load_pairs(data, split=split)
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if threads is None and local > 1 and not os.environ.get("CIR_MONAI_THREADS"):
            threads = max(1, usable_cpus() // local)  # torchrun's processes on this machine share its cores
        with cpu_threads(threads):
            summary = register_many(pairs, lams, out, model=model, device=device, workers=int(workers),
                                    ddf_units=ddf_units, figures=png, frame=frame, inverse=inverse, affine=affine,
                                    refine=int(refine), fine_steps=fine_steps)
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 alone reports
            print(f"{summary['registered']} registered, {summary['skipped']} already done, {summary['failed']} failed "
                  f"({summary['pairs_per_hour']:.0f} pairs per hour): {Path(out).expanduser() / 'summary.md'}")
            print(f"done in {time.perf_counter() - started:.1f} s")
        if summary["failed"]:
            failed = [k for k, v in summary["pairs"].items() if v["status"] == "failed"]
            raise ValueError(f"{len(failed)} pair(s) failed ({', '.join(failed[:5])}{' ...' if len(failed) > 5 else ''}"
                               f"): see {Path(out).expanduser() / 'summary.md'}")

    def apply(self, transform_dir: str, *images: str, out: str | None = None, label: bool = False,
              inverse: bool = False):
        """Apply a registration to other images (a T2, a PET, a label map), like antsApplyTransforms.

        `cir-monai apply OUT/<pair>/lam_1 t2.nii.gz --out t2_on_fixed.nii.gz`: each IMAGE (3D, lying where the
        moving scan lies, on any grid: spacing, orientation, field of view) is sampled once, from its own grid,
        through the field `register` wrote (the total one with --affine), onto the fixed image's grid. Zero
        outside the image.

        Args:
            transform_dir: a lam_<λ> folder written by `register` (transform.json, ddf.nii.gz).
            images: one or more image files.
            out: the output .nii.gz for one image; a folder for several (one output per image, named after it).
            label: nearest neighbour, for label maps of integers (their dtype is kept); default trilinear.
            inverse: the other way: images in the fixed image's space onto the moving image's grid, with
                ddf_inverse.nii.gz (written by `register --inverse`).
        """
        from cir_monai.apply import apply_transform

        start = time.perf_counter()
        for name, value in (("label", label), ("inverse", inverse)):
            if not isinstance(value, bool):  # fire reads `--label seg.nii.gz` as label="seg.nii.gz"
                raise ValueError(f"--{name} takes no value (got {value!r}): give the images first, e.g. "
                                 f"cir-monai apply DIR IMAGE --{name} --out OUT")
        if out is None:
            raise ValueError("--out is required: the output .nii.gz for one image, a folder for several")
        written = apply_transform(transform_dir, [str(image) for image in images], out, label=label, inverse=inverse)
        for source, path in zip(images, written):
            print(f"{path} (from {source})")
        grid = "the moving image's grid" if inverse else "the fixed image's grid"
        print(f"{len(written)} image(s) onto {grid}; done in {time.perf_counter() - start:.1f} s")

    def sweep(self, data: str = "embedded", lams=DEFAULT_LAMS, out: str = "runs/sweep",
              max_folding: float = MAX_FOLDING_PCT, rule: str = "max_dice", tolerance: float = 0.01,
              split: str = "validation", model: str | None = None, device: str | None = None,
              pixdim: float | None = None, refine: int = DEFAULT_REFINE, fine_steps: int = DEFAULT_FINE_STEPS,
              threads: int | None = None):
        """Find λ*: register every labelled pair at every λ with one model, as `register` would, and pick the best λ.

        Writes OUT/summary.md (report with tables and pictures), summary.json, one CSV per pair,
        tradeoff.png (Dice, std|J|, % folding vs λ, λ* marked), lambda_panel.png (the paper's
        Fig. 2 for the first pair), lam_star.json (read by `register --lam OUT`) and
        register_lam.yaml (an overlay for the bundle's register workflow).

        Args:
            data: "embedded" (default: the built-in MNI152 validation pairs), a JSON datalist, a
                Learn2Reg or neurite-OASIS folder, or a folder with datalist.json. Pairs need labels.
            lams: the λ values to try (default 0,0.1,0.5,1,2,4,8,10).
            out: output folder.
            max_folding: only λ whose mean % of voxels with det J ≤ 0 is at most this qualify (default 0.5).
            rule: max_dice (highest mean Dice, default) or smoothest (largest λ within
                --tolerance Dice of the best).
            tolerance: Dice tolerance of the smoothest rule.
            split: the datalist's list to use (default validation).
            model: model file (default: the bundle's shipped model).
            device: cpu or cuda.
            pixdim: resample to this spacing in mm first (default: the fixed image's grid).
            refine: per-pair refinement steps at every λ (default 20, register's default: λ* is chosen for the
                registrations register makes; `register --lam OUT` then refines as the sweep did). 0 scores the
                network alone (with --fine-steps 0; several times faster).
            fine_steps: then more steps at each pair's fixed grid (default 5, register's; recorded as refine is).
            threads: CPU threads (default: $CIR_MONAI_THREADS, else the usable cores not busy with other work).
        """
        from cir_monai.runtime import cpu_threads, tune_cpu_allocator
        from cir_monai.sweep import sweep

        started = _START if _START is not None else time.perf_counter()
        tune_cpu_allocator()
        with cpu_threads(threads):
            summary = sweep(data, out, parse_lams(lams), max_folding, rule, tolerance, split, model, device, pixdim,
                            refine=refine, fine_steps=fine_steps)
        report = Path(out).expanduser() / "summary.md"
        _print_table(report, bold=True)
        print(f"λ* = {summary['lam_star']:g} (for {refine} refinement steps and {fine_steps} at the fixed grid); "
              f"report: {report}")
        print(f"done in {time.perf_counter() - started:.1f} s")

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
        from cir_monai.workflows import evaluate

        started = _START if _START is not None else time.perf_counter()
        report = evaluate(model, parse_lams(lams), out, data, split, config, **overrides)
        _print_table(report)
        print(f"report: {report}")
        print(f"done in {time.perf_counter() - started:.1f} s")

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
        from cir_monai.workflows import train

        print(f"model: {train(config, out, init_from, **overrides)}")

    def convert(self, checkpoint: str, out: str = "model.pt"):
        """Convert an authors' cLapIRN checkpoint (.pth) into this project's model file.

        The result loads with `--model` everywhere and with the bundle (ckpt_path).

        Args:
            checkpoint: the authors' released .pth file.
            out: the model file to write (atomically).
        """
        from cir_monai.io.models import convert_checkpoint

        net = convert_checkpoint(checkpoint, out)
        print(f"{out}: {net.config}")


def _unknown_flag(argv: Sequence[str]) -> str | None:
    """A message for the first ``--flag`` the subcommand does not take, or None.

    fire would call the subcommand first and complain about the flag afterwards, after the work
    (and its outputs); this check runs before anything.
    """
    import inspect

    if not argv or not hasattr(Commands, argv[0]) or argv[0].startswith("_"):
        return None
    params = {name: p for name, p in inspect.signature(getattr(Commands, argv[0])).parameters.items()
              if p.kind is not inspect.Parameter.VAR_POSITIONAL}  # `apply`'s *images: positional only, no --images
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


def _help_flags(argv: list[str]) -> list[str]:
    """``--help`` / ``-h`` as fire understands them: alone, the list of commands; after a command, its help
    (``evaluate``/``train`` would otherwise pass ``--help`` on as a bundle override)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    if not any(a in ("--help", "-h") for a in argv[:cut]):
        return argv
    return [] if not argv or argv[0].startswith("-") else [argv[0], "--", "--help"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cir-monai`` / ``python -m cir_monai``; returns the exit status."""
    global _START
    _START = time.perf_counter()
    import fire

    from cir_monai.errors import user_message

    args = _help_flags(list(sys.argv[1:] if argv is None else argv))
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
