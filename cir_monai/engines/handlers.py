# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The training engine's logging, as MONAI handlers: progress lines, TensorBoard, ``metrics.jsonl``.

:class:`~cir_monai.engines.CLapIRNTrainer` runs an ignite engine whose output is ``[record]``
(MONAI's decollated form), one record per iteration: ``iteration`` (the global index ``k``, which a
resumed run continues), ``level``, ``frozen``, the loss terms, ``lam``, and from the trainer's own
bookkeeping ``seconds_per_iteration`` and ``eta_seconds``. Validation puts its scores in
``engine.state.metrics`` (``val_dice@1`` …) at the iteration it ran. The handlers here read that:

* MONAI's ``StatsHandler`` with :func:`progress_line` as ``iteration_print_logger``: the console line
  with losses, seconds per iteration and ETA (MONAI's own line has no ETA);
* MONAI's ``TensorBoardStatsHandler`` with :func:`tensorboard_scalars` as ``iteration_event_writer``
  (the scalars at the global ``k``, so a resumed run continues its curves);
* :class:`MetricsFile`: ``metrics.jsonl``, one JSON line per logged record and per validation.

:func:`default_handlers` builds the three (``bundle/configs/train.yaml`` lists them as
``train#handlers``, which MONAI Label extends). They write on rank 0 only.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch.distributed as dist
from ignite.engine import Engine, Events

__all__ = ["is_main_process", "every", "progress_line", "tensorboard_scalars", "MetricsFile", "default_handlers"]

logger = logging.getLogger("cir_monai.train")

#: the record entries written as TensorBoard scalars
SCALARS = ("loss", "similarity", "smoothness", "label", "lam", "level", "seconds_per_iteration")


def is_main_process() -> bool:
    """True without ``torch.distributed`` or on rank 0: the process that logs and writes files."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _record(engine: Engine) -> dict:
    return engine.state.output[0]


def every(period: int):
    """An ``iteration_log`` filter for MONAI's handlers: true every ``period`` global iterations and at the last."""
    period = max(1, int(period))

    def due(engine: Engine, _iteration: int) -> bool:
        record = _record(engine)
        return is_main_process() and (record["iteration"] % period == 0 or record["iteration"] == record.get("total"))

    return due


def progress_line(engine: Engine) -> None:
    """The console line of an iteration: ``iter k/total level l loss … s/it ETA hh:mm:ss``."""
    r = _record(engine)
    logger.info(
        "iter %d/%d level %d%s loss %.4f (sim %.4f, smooth %.4f, label %.4f, λ %.2f) %.2f s/it ETA %s",
        r["iteration"], r.get("total", 0), r["level"], " (lower frozen)" if r["frozen"] else "", r["loss"],
        r["similarity"], r["smoothness"], r["label"], r["lam"], r.get("seconds_per_iteration", float("nan")),
        time.strftime("%H:%M:%S", time.gmtime(r.get("eta_seconds", 0.0))),
    )


def tensorboard_scalars(engine: Engine, writer) -> None:
    """``iteration_event_writer`` of ``TensorBoardStatsHandler``: the record's scalars and any validation scores."""
    r = _record(engine)
    for key in SCALARS:
        if key in r:
            writer.add_scalar(key, float(r[key]), r["iteration"])
    if getattr(engine.state, "metrics_iteration", None) == r["iteration"]:
        for key, value in (engine.state.metrics or {}).items():
            writer.add_scalar(key, float(value), r["iteration"])
    writer.flush()


class MetricsFile:
    """Append the logged records and the validation scores to ``path`` (JSON lines), on rank 0.

    Args:
        path: the ``metrics.jsonl`` file.
        period: write the training record every this many global iterations (and at the last);
            validation scores are written whenever validation ran.
    """

    def __init__(self, path: str | os.PathLike, period: int = 50) -> None:
        self.path, self.due = Path(path), every(period)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not is_main_process():
            return
        r = _record(engine)
        lines = []
        if self.due(engine, engine.state.iteration):
            lines.append({**r, "frozen": int(r["frozen"])})
        if getattr(engine.state, "metrics_iteration", None) == r["iteration"]:
            lines.append({"iteration": r["iteration"], **engine.state.metrics})
        if lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.writelines(json.dumps(line) + "\n" for line in lines)


def default_handlers(output_dir: str | os.PathLike, log_every: int = 50, tensorboard: bool | None = None) -> list:
    """MONAI's ``StatsHandler`` (:func:`progress_line`), :class:`MetricsFile` and, when the ``tensorboard``
    package is installed (or ``tensorboard=True``), MONAI's ``TensorBoardStatsHandler``."""
    from monai.handlers import StatsHandler, TensorBoardStatsHandler

    handlers = [
        StatsHandler(iteration_log=every(log_every), epoch_log=False, iteration_print_logger=progress_line,
                     name="cir_monai.stats"),  # MONAI's get_logger stops that logger propagating: not ours
        MetricsFile(Path(output_dir) / "metrics.jsonl", log_every),
    ]
    if tensorboard is None:
        import importlib.util

        tensorboard = importlib.util.find_spec("tensorboard") is not None
    if tensorboard and is_main_process():
        handlers.append(TensorBoardStatsHandler(log_dir=str(Path(output_dir) / "tensorboard"),
                                                iteration_log=every(log_every),
                                                epoch_log=False, iteration_event_writer=tensorboard_scalars))
    return handlers
