# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Experiments that train many models: each model in its own process through the bundle's training workflow,
resumable, its time summed over attempts (``bench/paper_table1.py``, ``bench/paper_2d.py``).

A model is trained by ``python -m monai.bundle run training`` with ``bundle/configs/train.yaml`` and the given
overlays, into its own folder; a re-run resumes from that folder's ``checkpoint.pt`` (the trainer's exact resume)
and a finished model (``done.json``) is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cir_monai.defaults import bundle_root

__all__ = ["training_command", "train_in_process", "read_metrics", "late_slope"]


def training_command(overlays: Sequence[str | os.PathLike], run_dir: str | os.PathLike, seed: int = 0,
                     overrides: Mapping | None = None, dataset_dir: str | os.PathLike | None = None) -> list[str]:
    """The command that trains one model into ``run_dir``: ``train.yaml`` + ``overlays`` + ``--key value``
    ``overrides``, its data under ``dataset_dir`` (``None``: the configs' own); the bundle's ``models/model.pt`` is
    left alone (``bundle_model ""``)."""
    root = bundle_root()
    configs = [str(root / "configs" / "train.yaml"), *(str(Path(o).resolve()) for o in overlays)]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", json.dumps(configs),
           "--bundle_root", str(root), "--output_dir", str(Path(run_dir).resolve()), "--seed", str(int(seed)),
           "--train#trainer#bundle_model", ""]
    if dataset_dir is not None:
        cmd += ["--dataset_dir", str(Path(dataset_dir).resolve())]
    for key, value in (overrides or {}).items():
        cmd += [f"--{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
    return cmd


def train_in_process(overlays: Sequence[str | os.PathLike], run_dir: str | os.PathLike, seed: int = 0,
                     overrides: Mapping | None = None, threads: int = 1,
                     dataset_dir: str | os.PathLike | None = None) -> float:
    """Train (or resume) one model in its own process with ``threads`` CPU threads; its log goes to
    ``run_dir/train.log``. Returns the model's training seconds summed over every attempt (``timing.json``).

    Raises:
        RuntimeError: the training process failed (the log's path is in the message).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    done, timing = run_dir / "done.json", run_dir / "timing.json"
    if done.is_file():
        return float(json.loads(done.read_text())["seconds"])
    attempts = json.loads(timing.read_text()) if timing.is_file() else []
    cmd = training_command(overlays, run_dir, seed, overrides, dataset_dir)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    try:
        with open(run_dir / "train.log", "a") as log:
            result = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:  # an interrupted attempt's time counts too: the training time is the sum over attempts
        attempts.append(time.perf_counter() - start)
        timing.write_text(json.dumps(attempts))
    if result.returncode != 0:
        raise RuntimeError(f"training in {run_dir} failed (exit {result.returncode}); see {run_dir / 'train.log'}")
    done.write_text(json.dumps({"seconds": sum(attempts), "command": cmd}))
    return sum(attempts)


def read_metrics(run_dir: str | os.PathLike) -> tuple[list[dict], list[dict]]:
    """A run's ``metrics.jsonl`` split into training records (with ``loss``) and validation records (with
    ``val_dice@…``), each in iteration order; the last record of an iteration wins (a resumed run rewrites it), and a
    :class:`~cir_monai.engines.handlers.DivergenceGuard` rollback record (``rollback_from``) drops the records after
    the iteration it went back to (the diverged branch)."""
    train: dict[int, dict] = {}
    val: dict[int, dict] = {}
    path = Path(run_dir) / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        record = json.loads(line)
        if "rollback_from" in record:
            back = int(record["iteration"])
            train = {k: v for k, v in train.items() if k <= back}
            val = {k: v for k, v in val.items() if k <= back}
            continue
        if "loss" in record:
            train[int(record["iteration"])] = record
        if any(k.startswith("val_dice@") for k in record):
            val[int(record["iteration"])] = record
    return [train[k] for k in sorted(train)], [val[k] for k in sorted(val)]


def late_slope(records: Sequence[dict], key: str, last: int = 5000) -> tuple[float, float]:
    """How much a learning curve still moves at its end: the least-squares slope of ``key`` over the records of the
    last ``last`` iterations, per 1,000 iterations, and its standard error (NaN with fewer than 3 records).

    A curve has levelled off when the slope is within about two standard errors of 0, or small against the
    differences being measured (e.g. a Dice slope of 0.001 per 1k iterations when methods differ by 0.01).
    """
    import numpy as np

    end = max((int(r["iteration"]) for r in records if key in r), default=0)
    points = [(int(r["iteration"]) / 1000, float(r[key])) for r in records
              if key in r and int(r["iteration"]) > end - last]
    if len(points) < 3:
        return float("nan"), float("nan")
    x, y = np.array(points).T
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    error = np.sqrt(residual.var(ddof=2) / ((x - x.mean()) ** 2).sum())
    return float(slope), float(error)


def diverged(val: Sequence[dict]) -> bool:
    """Whether a run ended collapsed: its last validation record
    :func:`~cir_monai.engines.handlers.collapsed` (Dice below no registration's at every λ; such a model must not
    enter an analysis). ``val``: the validation records of :func:`read_metrics` (False when there are none)."""
    from cir_monai.engines.handlers import collapsed

    return bool(val) and collapsed(val[-1])
