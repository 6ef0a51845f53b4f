# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The training engine's handlers: checkpointing, and logging as MONAI handlers (progress lines, TensorBoard,
``metrics.jsonl``).

:class:`~cir_monai.engines.CLapIRNTrainer` runs an ignite engine whose output is ``[record]``
(MONAI's decollated form), one record per iteration: ``iteration`` (the global index ``k``, which a
resumed run continues), ``level``, ``frozen``, the loss terms, ``lam``, and from the trainer's own
bookkeeping ``seconds_per_iteration`` and ``eta_seconds``. Validation puts its scores in
``engine.state.metrics`` (``val_dice@1`` …) at the iteration it ran. The handlers here read that:

* MONAI's ``StatsHandler`` with :func:`progress_line` as ``iteration_print_logger``: the console line
  with losses, seconds per iteration and ETA (MONAI's own line has no ETA);
* MONAI's ``TensorBoardStatsHandler`` with :func:`tensorboard_scalars` as ``iteration_event_writer``
  (the scalars at the global ``k``, so a resumed run continues its curves);
* :class:`MetricsFile`: ``metrics.jsonl``, one JSON line per logged record and per validation;
* :class:`TrainingCheckpoint`: the training state (weights, optimizer, iteration, RNG, frame), written atomically,
  from which a re-run resumes exactly. MONAI's ``CheckpointSaver`` saves objects' state dicts through ignite's
  ``ModelCheckpoint``; an exact resume also needs the global iteration and the RNG states, so this writes the one
  file :meth:`~cir_monai.engines.CLapIRNTrainer.load_state` reads.

:func:`default_handlers` builds the three (``bundle/configs/train.yaml`` lists them as
``train#handlers``, which MONAI Label extends). They write on rank 0 only.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
from ignite.engine import Engine, Events

from cir_monai.frame import model_frame
from cir_monai.io.checkpoint import save_checkpoint
from cir_monai.io.models import model_file_state
from cir_monai.networks import unwrap
from cir_monai.runtime import rank_and_world

__all__ = ["is_main_process", "every", "progress_line", "tensorboard_scalars", "MetricsFile", "TrainingCheckpoint",
           "default_handlers"]

logger = logging.getLogger("cir_monai.train")

#: the record entries written as TensorBoard scalars
SCALARS = ("loss", "similarity", "smoothness", "label", "field", "lam", "level", "seconds_per_iteration")


def is_main_process() -> bool:
    """True without ``torch.distributed`` or on rank 0: the process that logs and writes files."""
    return rank_and_world()[0] == 0


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
        "iter %d/%d level %d%s loss %.4f (sim %.4f, smooth %.4f, label %.4f, field %.4f, λ %.2f) %.2f s/it "
        "ETA %s",
        r["iteration"], r.get("total", 0), r["level"], " (lower frozen)" if r["frozen"] else "", r["loss"],
        r["similarity"], r["smoothness"], r["label"], r.get("field", 0.0), r["lam"],
        r.get("seconds_per_iteration", float("nan")),
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


class TrainingCheckpoint:
    """Write the training state to ``path`` every ``every`` global iterations and at the last, on rank 0, atomically.

    The state: ``model`` (plain state dict), ``network`` (its configuration, so the file loads as a model),
    ``frame``, ``optimizer``, ``iteration``, ``level`` and ``rng`` (torch and CUDA generator states).

    Args:
        path: the checkpoint file (the trainer resumes from ``output_dir/checkpoint.pt``).
        network: the network being trained (``DistributedDataParallel`` is looked through).
        optimizer: its optimizer.
        frame: the frame it is trained in (:func:`~cir_monai.frame.model_frame`).
        every: iterations between checkpoints.
    """

    def __init__(self, path: str | os.PathLike, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 frame: dict | None = None, every: int = 500) -> None:
        self.path, self.network, self.optimizer = Path(path), network, optimizer
        self.model = unwrap(network)
        self.frame = model_frame(frame, self.model)
        self.every = max(1, int(every))

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def state(self, iteration: int, level: int) -> dict:
        """A model file (:func:`~cir_monai.io.model_file_state`) plus what resuming needs."""
        return model_file_state(
            self.model, self.frame,
            optimizer=self.optimizer.state_dict(),
            iteration=int(iteration),
            level=int(level),
            rng={"torch": torch.get_rng_state(),
                 "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        )

    def __call__(self, engine: Engine) -> None:
        r = _record(engine)
        if (r["iteration"] % self.every == 0 or r["iteration"] == r.get("total")) and is_main_process():
            save_checkpoint(self.state(r["iteration"], r["level"]), self.path)


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
