#!/usr/bin/env python
"""Baselines on the embedded test pairs: our cLapIRN vs ANTs SyN vs the authors' released lite model.

    python bench/bench_baselines.py [--model bundle/models/model.pt] [--lams 0,0.1,0.5,1,2,4,8,10]
        [--ants-transform SyN] [--lite-lams 0,1,4,10] [--pairs 8] [--threads 2] [--out runs/baselines] [--no-append]

Needs ``pip install -r requirements-bench.txt`` (antspyx). Methods, each scored with the same
functions of :mod:`cir_monai.metrics` (Dice per label and mean, HD95 in mm, std|J|, % det J ≤ 0,
SDlogJ; forward-difference Jacobian of the voxel DDF) on every pair:

* ``ours``: the trained cLapIRN at each λ, through :class:`cir_monai.engines.RegistrationEvaluator`
  on the pairs' own grid (2 mm, 80×96×80); seconds = the network's forward pass.
* ``ANTs``: ``ants.registration(fixed, moving, type_of_transform=...)`` on the same NIfTI files (their own
  grid, which is the RAS grid the networks see for these pairs) and
  the same number of threads; seconds = the wall time of ``ants.registration``. The moving label is
  warped by nearest neighbour through the converted DDF (exactly as ours; `--ants-labels genericLabel` uses
  ANTs' own interpolator instead). The composite forward transform (affine + SyN) is
  composed into one displacement field on the fixed grid (physical mm, ITK's LPS frame) and turned
  into a voxel DDF in MONAI's convention, ``ddf = (direction · diag(spacing))⁻¹ · d``, for the
  Jacobian statistics. Every pair checks that conversion: warping the moving image with
  :class:`cir_monai.networks.Warp` and that DDF must reproduce ANTs' own warped image, and a
  4th-order central-difference Jacobian of it ANTs' ``create_jacobian_determinant_image``.
* ``lite``: the authors' released lite model (``official_clapirn_lite_oasis.pth``, OASIS, 1 mm,
  λ = 10 × their normalised code), converted on load. Its inputs are resampled to 1 mm (~160×192×160)
  as it was trained on 1 mm images, so its rows (and its own ``before`` row) are scored on that grid.

Writes ``per_pair.csv`` and ``summary.json`` to ``--out``, prints a markdown table and appends it,
with the command, to docs/benchmarks.md (unless ``--no-append``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from benchlog import append_table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "bundle" / "models" / "model.pt"
DEV_MODEL = ROOT / "runs" / "train" / "model.pt"
LITE = ROOT.parent / "shared" / "reference" / "official_clapirn_lite_oasis.pth"
LABEL_NAMES = {1: "CSF", 2: "GM", 3: "WM"}
METRICS = ("dice_mean", "hd95_mean", "jac_std", "folding_pct", "sdlogj", "seconds")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


# ----------------------------------------------------------------------------------------- networks


class _SpacingEach:
    """Resample each key to ``pixdim`` with MONAI's array ``Spacing`` (bilinear images, nearest labels).

    ``Spacingd`` cannot be used on this project's keys: it treats every key that starts with
    ``"<key>_"`` as the meta dict of ``<key>`` and so calls ``.update`` on ``fixed_label``.
    """

    def __init__(self, pixdim: float) -> None:
        from monai.transforms import Spacing

        self.image = Spacing(pixdim=pixdim, mode="bilinear")
        self.label = Spacing(pixdim=pixdim, mode="nearest")

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        for key in ("fixed", "moving", "fixed_label", "moving_label"):
            if key in d:
                d[key] = (self.label if key.endswith("label") else self.image)(d[key])
        return d


def network_rows(method: str, net, pairs: list[dict], lams: list[float], pixdim: float | None, orientation: str,
                 device: str, grid: str) -> list[dict]:
    """Rows (pair × {before, λ...}) of a CLapIRN through the project's evaluator."""
    from cir_monai.engines import RegistrationEvaluator
    from cir_monai.transforms import registration_preprocessing

    evaluator = RegistrationEvaluator(net, pairs, lams, output_dir=tempfile.gettempdir(), orientation=orientation,
                                      device=device, progress=False)  # only evaluate_pair is used: writes nothing
    if pixdim is not None:  # the evaluator's own pixdim path goes through Spacingd (see _SpacingEach)
        pre = registration_preprocessing(None, None, orientation)
        index = next(i for i, t in enumerate(pre.transforms) if type(t).__name__ == "MatchGridd")
        pre.transforms = (*pre.transforms[:index], _SpacingEach(pixdim), *pre.transforms[index:])
        evaluator.preprocessing = pre
    data = evaluator.preprocessing(dict(pairs[0]))  # warm-up: oneDNN primitives and the allocator
    with torch.no_grad():
        net(data["moving"].as_tensor()[None].to(device), data["fixed"].as_tensor()[None].to(device), lams[0])
    shape = "×".join(str(s) for s in data["fixed"].shape[1:])
    rows = []
    for index, pair in enumerate(pairs):
        start = time.perf_counter()
        result, labels, per_label = evaluator.evaluate_pair(pair)[:3]  # (+ kept fields in newer versions)
        for row in result:
            name = row["lam"]
            rows.append({
                "method": method if name != "before" else "identity", "pair": pair["id"], "lam": name,
                "grid": f"{grid} {shape}", **{k: row[k] for k in METRICS},
                **{f"dice_{v}": d for v, d in zip(labels, per_label[name])},
            })
        print(f"  {method} {pair['id']}: {time.perf_counter() - start:.1f} s, Dice "
              + " ".join(f"{r['lam']}={r['dice_mean']:.3f}" for r in rows[-len(result):]), file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------------------------- ANTs


def ants_to_voxel_ddf(field: np.ndarray, direction: np.ndarray, spacing) -> torch.Tensor:
    """An ANTs/ITK displacement field ``(X, Y, Z, 3)`` in physical mm (LPS) as a ``(1, 3, X, Y, Z)`` voxel DDF.

    ITK maps a continuous index ``i`` to ``p = origin + D·diag(s)·i`` (its direction ``D`` already
    holds the RAS→LPS flip of a NIfTI file), and samples the moving image at ``p + d(p)``; so the
    displacement in index units along the array axes is ``(D·diag(s))⁻¹·d``: MONAI's DDF of the
    numpy array that ``ants.image_read(...).numpy()`` (and nibabel) return.
    """
    to_index = np.linalg.inv(np.asarray(direction, dtype=np.float64) @ np.diag(np.asarray(spacing, dtype=np.float64)))
    vox = np.asarray(field, dtype=np.float64) @ to_index.T
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(vox, -1, 0)[None], dtype=np.float32))


def _jacobian_4th_order(ddf: torch.Tensor) -> np.ndarray:
    """det J with 5-point (4th-order) central differences, valid 2 voxels away from the border: what
    ``ants.create_jacobian_determinant_image`` computes (it matches to float32 rounding), so comparing the
    two checks the DDF conversion. The table's Jacobian metrics use :func:`jacobian_statistics` instead."""
    u = ddf[0].double().numpy()
    n = u.shape[1:]
    jac = np.zeros((3, 3, *(s - 4 for s in n)))
    for i in range(3):
        for j in range(3):
            def sl(a, b, j=j):
                return tuple(slice(a, n[k] - b) if k == j else slice(2, n[k] - 2) for k in range(3))
            jac[i, j] = (-u[i][sl(4, 0)] + 8 * u[i][sl(3, 1)] - 8 * u[i][sl(1, 3)] + u[i][sl(0, 4)]) / 12 + (i == j)
    return np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))


def ants_rows(pairs: list[dict], transform: str, label_interp: str = "genericLabel",
              hd95: bool = True) -> tuple[list[dict], list[dict]]:
    """Register each pair with ANTs; rows as in :func:`network_rows` and the DDF-conversion checks.

    ``label_interp``: ``"genericLabel"`` (ANTs warps the label) or ``"nearest"`` (our nearest-neighbour
    :class:`Warp` through the converted DDF: exactly how the networks' labels are scored). The row holds
    the Dice of both (``dice_mean_genericlabel``, ``dice_mean_nearest``); the other metrics use the chosen one.
    """
    import ants

    from cir_monai.metrics import dice_per_label, hd95_per_label, jacobian_statistics, present_labels
    from cir_monai.networks import Warp

    rows, checks = [], []
    for pair in pairs:
        fixed, moving = ants.image_read(pair["fixed"]), ants.image_read(pair["moving"])
        m_lab_img = ants.image_read(pair["moving_label"])
        with tempfile.TemporaryDirectory(prefix="ants_") as tmp:
            start = time.perf_counter()
            reg = ants.registration(fixed, moving, type_of_transform=transform, outprefix=os.path.join(tmp, "reg_"))
            seconds = time.perf_counter() - start
            warped_lab = ants.apply_transforms(fixed, m_lab_img, reg["fwdtransforms"], interpolator="genericLabel")
            composed = ants.apply_transforms(fixed, moving, reg["fwdtransforms"], compose=os.path.join(tmp, "comp_"))
            field = ants.image_read(composed).numpy()
            ants_det = ants.create_jacobian_determinant_image(fixed, composed).numpy()
        ddf = ants_to_voxel_ddf(field, fixed.direction, fixed.spacing)

        # the conversion check: our Warp with the converted DDF vs ANTs' own (linear) warped image
        ours = Warp("bilinear", "border")(torch.from_numpy(moving.numpy())[None, None].float(), ddf)[0, 0].numpy()
        diff = np.abs(ours - reg["warpedmovout"].numpy())
        # where the sample point falls outside the image, ITK returns 0 and grid_sample "border" the edge value
        index = np.stack(np.meshgrid(*[np.arange(s) for s in moving.shape], indexing="ij"))
        point = index + ddf[0].numpy()
        size = np.asarray(moving.shape).reshape(3, 1, 1, 1) - 1
        inner = diff[((point >= 0) & (point <= size)).all(0)]
        det_diff = np.abs(_jacobian_4th_order(ddf) - ants_det[2:-2, 2:-2, 2:-2])
        scale = float(np.abs(moving.numpy()).max()) or 1.0
        checks.append({
            "pair": pair["id"], "warp_maxabs_inside": float(inner.max()) / scale,
            "warp_meanabs_inside": float(inner.mean()) / scale, "warp_maxabs_all": float(diff.max()) / scale,
            "inside_fraction": inner.size / diff.size,
            "jac_maxabs_vs_ants": float(det_diff.max()), "jac_meanabs_vs_ants": float(det_diff.mean()),
            "ddf_maxabs_vox": float(ddf.abs().max()),
        })

        f_lab = torch.from_numpy(ants.image_read(pair["fixed_label"]).numpy())[None, None].round().long()
        m_lab = torch.from_numpy(m_lab_img.numpy())[None, None].round().long()
        w_lab = torch.from_numpy(warped_lab.numpy())[None, None].round().long()
        labels = present_labels(f_lab, m_lab)
        spacing = [float(s) for s in fixed.spacing]
        shape = "×".join(str(s) for s in fixed.shape)
        nearest = Warp("nearest", "zeros")(m_lab.float(), ddf).round().long()  # how the networks' labels are scored
        dice_generic, _ = dice_per_label(w_lab, f_lab, labels)
        dice_nearest, _ = dice_per_label(nearest, f_lab, labels)
        chosen = nearest if label_interp == "nearest" else w_lab
        dice = dice_nearest if label_interp == "nearest" else dice_generic
        hd = hd95_per_label(chosen, f_lab, labels, spacing=spacing)[0] if hd95 else torch.full_like(dice, float("nan"))
        stats = jacobian_statistics(ddf)
        epe = float("nan")
        # known-truth pairs (cir_monai.data.heldout): end-point error over the fixed brain, mm
        if pair.get("ddf_truth"):
            truth = np.moveaxis(np.asarray(nib.load(pair["ddf_truth"]).dataobj)[:, :, :, 0, :], -1, 0)
            to_mm = np.asarray(fixed.direction) @ np.diag(fixed.spacing)  # voxel axes -> LPS mm; the norm is frame-free
            error = np.linalg.norm(np.einsum("ij,j...->i...", to_mm, ddf[0].numpy() - truth), axis=0)
            epe = float(error[fixed.numpy() > 0].mean())  # over the fixed brain, as the evaluator
        rows.append({
            "method": f"ANTs {transform}", "epe_mm": epe, "pair": pair["id"], "lam": "",
            "grid": f"{spacing[0]:g} mm {shape}",
            "dice_mean": float(torch.nanmean(dice[0])), "hd95_mean": float(torch.nanmean(hd[0])),
            "jac_std": float(stats["jac_std"][0]), "folding_pct": float(stats["folding_pct"][0]),
            "sdlogj": float(stats["sdlogj"][0]), "seconds": seconds,
            "dice_mean_genericlabel": float(torch.nanmean(dice_generic[0])),
            "dice_mean_nearest": float(torch.nanmean(dice_nearest[0])),
            **{f"dice_{v}": float(d) for v, d in zip(labels, dice[0])},
        })
        c = checks[-1]
        print(f"  ANTs {pair['id']}: {seconds:.1f} s, Dice {rows[-1]['dice_mean']:.3f}; DDF check: warp max|Δ| "
              f"{c['warp_maxabs_inside']:.2e}, det J max|Δ| {c['jac_maxabs_vs_ants']:.2e}", file=sys.stderr, flush=True)
    return rows, checks


# -------------------------------------------------------------------------------------------- report


def summarise(rows: list[dict]) -> list[dict]:
    """Mean over pairs per (method, λ, grid), in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["lam"], row["grid"]), []).append(row)
    out = []
    for (method, lam, grid), group in groups.items():
        keys = [k for k in group[0] if k.startswith("dice_") or k in METRICS]
        entry = {"method": method, "lam": lam, "grid": grid, "pairs": len(group)}
        for k in keys:
            values = [r[k] for r in group if k in r]
            entry[k] = float(np.nanmean(values))
        entry["dice_sd"] = float(np.std([r["dice_mean"] for r in group]))
        out.append(entry)
    return out


def markdown(summary: list[dict], labels: list[int]) -> str:
    ants = [s["seconds"] for s in summary if s["method"].startswith("ANTs")]
    ants_s = ants[0] if ants else None
    columns = ["method", "λ", "grid", "Dice", *(f"Dice {LABEL_NAMES.get(v, v)}" for v in labels), "HD95 mm",
               "std\\|J\\|", "% det J ≤ 0", "SDlogJ", "s / pair", "× faster than ANTs"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for s in summary:
        speed = ""
        if ants_s and s["seconds"] > 0:
            speed = f"{ants_s / s['seconds']:.1f}×"
        lines.append(
            f"| {s['method']} | {s['lam'] or '–'} | {s['grid']} | {s['dice_mean']:.3f} ± {s['dice_sd']:.3f} | "
            + " | ".join(f"{s.get(f'dice_{v}', float('nan')):.3f}" for v in labels)
            + f" | {s['hd95_mean']:.2f} | {s['jac_std']:.3f} | {s['folding_pct']:.3f} | {s['sdlogj']:.3f} | "
            f"{s['seconds']:.2f} | {speed} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help=f"our model (default {DEFAULT_MODEL.relative_to(ROOT)}, "
                        f"else {DEV_MODEL.relative_to(ROOT)} for development)")
    parser.add_argument("--lams", default="0,0.1,0.5,1,2,4,8,10", help="λ values of our model")
    parser.add_argument("--ants-transform", default="SyN", help="type_of_transform of ants.registration (e.g. SyNOnly)")
    parser.add_argument("--lite", default=str(LITE), help="the authors' lite weights ('' to skip)")
    parser.add_argument("--lite-lams", default="0,1,4,10",
                        help="λ of the lite model (= 10 × the authors' normalised code; "
                        "0, 0.1, 0.4, 1 are the codes of the parity fixtures)")
    parser.add_argument("--lite-pixdim", type=float, default=1.0,
                        help="resample to this spacing (mm) for the lite model")
    parser.add_argument("--lite-orientation", default="RAS",
                        help="axis codes the lite model's inputs are reoriented to")
    parser.add_argument("--methods", default="ours,ants,lite", help="subset of ours,ants,lite")
    parser.add_argument("--pairs", type=int, default=8, help="first N embedded test pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="device of the networks (ANTs is CPU only)")
    parser.add_argument("--ants-labels", choices=("genericLabel", "nearest"), default="nearest",
                        help="how ANTs' moving label is warped for Dice/HD95 (nearest = through the DDF, like ours)")
    parser.add_argument("--ants-seed", type=int, default=0, help="ANTs --random-seed (affine metric sampling)")
    parser.add_argument("--data", default=str(ROOT / "data" / "embedded"))
    parser.add_argument("--out", default=str(ROOT / "runs" / "baselines"))
    parser.add_argument("--no-append", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - {"ours", "ants", "lite"}
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}")

    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)  # read by ITK when ants first runs
    from cir_monai.io import load_network
    from cir_monai.runtime import tune_cpu_allocator
    from cir_monai.workflows import prepared_pairs

    tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    pairs = prepared_pairs(args.data, "test", 2.0, (80, 96, 80), num_validation=4, num_test=8)[: args.pairs]
    pairs = [{**p, "id": p.get("id") or Path(p["fixed"]).parent.name} for p in pairs]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    notes, rows, checks, config = [], [], [], {"pairs": [p["id"] for p in pairs], "threads": args.threads}

    if "ours" in methods:
        model = Path(args.model) if args.model else DEFAULT_MODEL
        if args.model is None and not model.is_file():
            model = DEV_MODEL
            print(f"warning: {DEFAULT_MODEL.relative_to(ROOT)} not found, using {model.relative_to(ROOT)}",
                  file=sys.stderr)
        net = load_network(model, args.device)
        config["model"] = str(model.resolve().relative_to(ROOT) if model.resolve().is_relative_to(ROOT) else model)
        rows += network_rows("ours", net, pairs, _floats(args.lams), None, "RAS", args.device, "2 mm")
        notes.append(f"ours: `{config['model']}`, λ ∈ [0, {net.lam_max:g}], on the pairs' own grid.")
        del net

    if "ants" in methods:
        import ants
        import ants.config

        ants.config.set_ants_deterministic(True, args.ants_seed)  # seeds antsRegistration's sampling ...
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)  # ... which also sets 1 thread: undo
        ants_r, checks = ants_rows(pairs, args.ants_transform, args.ants_labels)
        rows += ants_r
        config["antspyx"] = getattr(ants, "__version__", "?")
        config["ants_transform"] = args.ants_transform
        worst = {k: max(c[k] for c in checks) for k in checks[0] if k != "pair"}
        other = "nearest" if args.ants_labels == "genericLabel" else "genericLabel"
        other_dice = float(np.mean([r[f"dice_mean_{other.lower()}"] for r in ants_r]))
        how = {"genericLabel": "ANTs' `genericLabel` interpolator",
               "nearest": "nearest neighbour through the converted DDF, as the networks' are"}
        notes.append(
            f"ANTs: antspyx {config['antspyx']} `ants.registration(type_of_transform=\"{args.ants_transform}\")`, "
            f"{args.threads} ITK threads, `--random-seed {args.ants_seed}`; time = `ants.registration` only; labels "
            f"warped with {how[args.ants_labels]} (with {how[other]}: Dice {other_dice:.3f}). "
            f"Jacobian metrics from the composed forward transform (a displacement field) converted to a voxel DDF; "
            f"check (worst pair): our Warp vs ANTs' warped image max |Δ| {worst['warp_maxabs_inside']:.1e} "
            f"(relative to the image max, where the sample point lies inside the image), "
            f"5-point det J vs `create_jacobian_determinant_image` max |Δ| {worst['jac_maxabs_vs_ants']:.1e}."
        )

    if "lite" in methods and args.lite:
        if not Path(args.lite).is_file():
            print(f"warning: lite weights {args.lite} not found: skipped", file=sys.stderr)
        else:
            net = load_network(args.lite, args.device)
            rows += network_rows("authors' lite (OASIS)", net, pairs, _floats(args.lite_lams), args.lite_pixdim,
                                 args.lite_orientation, args.device, f"{args.lite_pixdim:g} mm")
            config["lite"] = str(args.lite)
            notes.append(
                f"lite: the authors' released weights (trained on OASIS at 1 mm), λ = 10 × their code, inputs "
                f"resampled to {args.lite_pixdim:g} mm (bilinear images, nearest labels): its rows and its `identity` "
                f"row are scored on that grid (Dice/HD95 of labels resampled from 2 mm; Jacobian per 1 mm voxel), "
                f"not directly comparable with the 2 mm rows. Our data are 2 mm images upsampled, not native 1 mm."
            )
            del net

    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(out / "per_pair.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarise(rows)
    labels = sorted({int(k.split("_")[1]) for row in rows for k in row if k.split("_")[-1].isdigit()})
    notes.insert(0, f"{len(pairs)} embedded test pairs; Dice = mean ± sd over pairs of the mean over labels "
                 f"({', '.join(f'{v} {LABEL_NAMES.get(v, v)}' for v in labels)}); std|J|, % det J ≤ 0, SDlogJ: "
                 f"forward differences of the voxel DDF; `identity` = before registration on that grid.")
    table = markdown(summary, labels) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    (out / "summary.json").write_text(json.dumps(
        {"config": config, "summary": summary, "ants_ddf_checks": checks, "notes": notes}, indent=1))
    print(table)
    print(f"wrote {out / 'per_pair.csv'} and {out / 'summary.json'}")
    if not args.no_append:
        machine = f"{platform.processor() or platform.machine()}, {args.threads} threads, device {args.device}"
        path = append_table("Baselines: ours vs ANTs SyN vs the authors' lite model", "bench/bench_baselines.py",
                            machine, table)
        print(f"appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
