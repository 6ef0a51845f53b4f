#!/usr/bin/env python
"""Atlas-based segmentation (the bundle's inference workflow) against the truth, next to the unwarped atlas.

    python bench/bench_atlas_segmentation.py [--lams 1,4] [--embedded 8] [--heldout 4] [--no-append]

Two settings, each with the atlas whose labels the images' truth uses:

* **embedded**: the fixed images of the embedded test pairs (MNI152 2009a under random deformations,
  2 mm, tissue truth: CSF, grey and white matter) with the tissue atlas (the 2009a template and its
  tissue labels at 1 mm, :func:`cir_monai.atlas.build_tissue_atlas`);
* **held-out**: the fixed images of the held-out pairs (MNI 2009c under random deformations, 1 mm,
  CerebrA truth, 102 regions) with the shipped CerebrA atlas (``bundle/atlas``). The atlas is the
  undeformed 2009c template, so this measures how much of a known deformation the model recovers.

Each image goes through ``python -m monai.bundle run`` with ``bundle/configs/inference.yaml`` (in
process, ``ConfigWorkflow``), the label map comes back in the image's own space, and Dice (mean
over the labels present in the truth) is computed there. "unwarped atlas" is the atlas labels
resampled onto the image (nearest neighbour), i.e. λ-free, no registration. Seconds per request
is the workflow's run time per image, the model already loaded (as in a MONAI Label server).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from cir_monai.benchmarking import append_table

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundle"


def mean_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    labels = [v for v in np.unique(truth) if v != 0]
    scores = [2.0 * np.sum((pred == v) & (truth == v)) / max(np.sum(pred == v) + np.sum(truth == v), 1) for v in labels]
    return float(np.mean(scores))


def unwarped_atlas(atlas_dir: Path, image_path: Path) -> np.ndarray:
    from monai.transforms import LoadImage, ResampleToMatch

    load = LoadImage(image_only=True, ensure_channel_first=True)
    label = load(str(atlas_dir / "atlas_label.nii.gz")).float()
    image = load(str(image_path))
    return ResampleToMatch(mode="nearest")(label, img_dst=image)[0].numpy().round().astype(np.int32)


def segment(images: list[Path], atlas_dir: Path, lam: float, out: Path) -> tuple[list[Path], float]:
    from monai.bundle import ConfigWorkflow

    workflow = ConfigWorkflow(str(BUNDLE / "configs" / "inference.yaml"), workflow_type="infer",
                              bundle_root=str(BUNDLE), atlas_dir=str(atlas_dir), output_dir=str(out), lam=lam,
                              datalist=[str(p) for p in images])
    workflow.initialize()
    start = time.perf_counter()
    workflow.run()
    seconds = (time.perf_counter() - start) / len(images)
    workflow.finalize()
    return [out / f"{p.name.removesuffix('.nii.gz')}_atlas_seg.nii.gz" for p in images], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lams", default="1,4")
    parser.add_argument("--embedded", type=int, default=8, help="embedded test pairs (their fixed images)")
    parser.add_argument("--heldout", type=int, default=4, help="held-out pairs (their fixed images)")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from cir_monai.atlas import build_tissue_atlas
    from cir_monai.data.heldout import prepare_heldout
    from cir_monai.data.prepare import prepare_embedded

    work = Path(tempfile.mkdtemp(prefix="atlas_bench_"))
    settings = []
    embedded = json.loads(Path(prepare_embedded(ROOT / "data" / "embedded")).read_text())["test"][: args.embedded]
    tissue = build_tissue_atlas(work / "tissue_atlas")
    settings.append(("embedded (tissue atlas, 3 classes)", tissue, ROOT / "data" / "embedded", embedded))
    heldout = json.loads(Path(prepare_heldout(ROOT / "data" / "heldout")).read_text())["test"][: args.heldout]
    settings.append(("held-out (CerebrA atlas, 102 regions)", BUNDLE / "atlas", ROOT / "data" / "heldout", heldout))

    lams = [float(v) for v in args.lams.split(",")]
    rows = []
    for name, atlas_dir, base, pairs in settings:
        inputs = work / name.split()[0] / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        images, truths = [], []
        for i, pair in enumerate(pairs):  # unique names: the workflow names outputs after inputs
            images.append(Path(shutil.copy(base / pair["fixed"], inputs / f"image_{i:03d}.nii.gz")))
            truths.append(np.asarray(nib.load(str(base / pair["fixed_label"])).dataobj).round().astype(np.int32))
        before = [mean_dice(unwarped_atlas(atlas_dir, p), t) for p, t in zip(images, truths)]
        rows.append({"setting": name, "method": "unwarped atlas", "dice": float(np.mean(before)),
                     "worst": float(np.min(before)), "seconds": float("nan")})
        for lam in lams:
            outputs, seconds = segment(images, atlas_dir, lam, work / name.split()[0] / f"lam_{lam:g}")
            scores = []
            for out, truth in zip(outputs, truths):
                seg = nib.load(str(out))
                assert seg.shape[:3] == truth.shape, (seg.shape, truth.shape)
                scores.append(mean_dice(np.asarray(seg.dataobj).reshape(truth.shape).round().astype(np.int32), truth))
            rows.append({"setting": name, "method": f"cLapIRN λ={lam:g}", "dice": float(np.mean(scores)),
                         "worst": float(np.min(scores)), "seconds": seconds})
            print(f"{name} λ={lam:g}: Dice {np.mean(scores):.3f} (unwarped {np.mean(before):.3f}), "
                  f"{seconds:.1f} s/image",
                  file=sys.stderr, flush=True)

    header = "| setting | method | mean Dice | worst image | s / request |\n|---|---|---|---|---|"
    lines = [f"| {r['setting']} | {r['method']} | {r['dice']:.3f} | {r['worst']:.3f} | "
             + ("–" if np.isnan(r["seconds"]) else f"{r['seconds']:.1f}") + " |" for r in rows]
    table = "\n".join([header, *lines])
    print(table)
    (work / "summary.json").write_text(json.dumps(rows, indent=1))
    if not args.no_append:
        details = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; "
                   f"{len(embedded)} embedded and {len(heldout)} held-out images; outputs in {work}")
        append_table(ROOT, "Atlas-based segmentation (bundle inference workflow)", "bench/bench_atlas_segmentation.py",
                     details, table)


if __name__ == "__main__":
    main()
