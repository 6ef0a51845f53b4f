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
  file :meth:`~cir_monai.engines.CLapIRNTrainer.load_state` reads;
* :class:`DivergenceGuard`: rolls training back to its last good validation, at a lower learning rate, when the
  loss stops being finite or the model scores below no registration (:func:`collapsed`).

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
from cir_monai.io.checkpoint import load_checkpoint, save_checkpoint
from cir_monai.io.models import model_file_state
from cir_monai.networks import unwrap
from cir_monai.runtime import rank_and_world

__all__ = ["is_main_process", "every", "progress_line", "tensorboard_scalars", "MetricsFile", "TrainingCheckpoint",
           "DivergenceGuard", "collapsed", "default_handlers"]

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


#: how far below no registration's Dice a validation must fall, at every λ, to count as a collapse
COLLAPSE_MARGIN = 0.05


def collapsed(scores: dict, margin: float = COLLAPSE_MARGIN) -> bool:
    """Whether a validation record shows a collapsed model: Dice more than ``margin`` below no registration's
    (``val_dice_before``) at every λ it validated (``val_dice@…``). A trained registration model is never worse than
    the identity; the 2D reproduction's CIR-CM seed 0 at lr 1e-3 was, by 0.30 (0.18 against 0.48, from a loss spike at
    iteration 10,600 on). The margin keeps a model that has barely moved yet from counting: the same CIR-CM scored
    0.4796 against 0.4799 at its first validation. False when the record has no such scores."""
    before = scores.get("val_dice_before")
    dice = [float(v) for k, v in scores.items() if k.startswith("val_dice@")]
    return before is not None and bool(dice) and all(d < float(before) - margin for d in dice)


class DivergenceGuard:
    """Roll a diverged run back to its last good validation and go on at a lower learning rate.

    Every ``interval`` global iterations (the validation's: attach after
    :class:`~cir_monai.engines.validation.LevelValidation`) the run is checked. It has diverged when a training loss
    since the last check was not finite, or when this iteration's validation :func:`collapsed` *and* fell more than
    :data:`COLLAPSE_MARGIN` below the last good validation at every λ (a collapse is a fall: the first validation of a
    run, or a short fine-tune of a model scored on pairs it does not yet beat the identity on, is no collapse, and is
    kept as the first good state). A run that passes has its training state and scores written to ``good_path``
    (atomically, as :class:`TrainingCheckpoint` writes it, plus ``validation``). A run that
    fails is stopped with ``engine.state.rollback`` set; :meth:`~cir_monai.engines.CLapIRNTrainer.run` then reloads
    ``good_path`` (weights, optimizer, RNG, iteration) and continues with every learning rate multiplied by
    ``lr_factor`` for the rest of the run. The factor is kept in the optimizer's parameter groups (``lr_scale``,
    ``rollbacks``), so it is saved in the checkpoints and a resumed run keeps it. A model that never diverges trains
    exactly as without the guard. After ``max_rollbacks`` rollbacks, or on a non-finite loss before any good state,
    it raises.

    Why: the 2D reproduction's CIR-CM seed 0 collapsed 2,600 iterations into level 3 (a fresh Adam at lr 1e-3) and
    trained on, dead, for 17,000 more; the other models of that schedule never tripped this check.

    Under ``torch.distributed`` every rank takes the same decision (the flags are reduced across ranks; validation
    runs on rank 0). ``good_path`` must be readable by every rank (one machine, or a shared file system), as
    ``checkpoint.pt`` must for a resume.

    Args:
        good_path: where the last good state is kept (``output_dir/checkpoint_good.pt`` in ``train.yaml``), a
            :class:`TrainingCheckpoint` state.
        network, optimizer, frame: the run's, as given to its :class:`TrainingCheckpoint`.
        interval: iterations between checks: the validation's interval.
        max_rollbacks: rollbacks allowed in one run before it raises.
        lr_factor: the learning rate's factor at each rollback, in (0, 1).
    """

    def __init__(self, good_path: str | os.PathLike, network: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 frame: dict | None = None, interval: int = 1000, max_rollbacks: int = 2,
                 lr_factor: float = 0.5) -> None:
        if not 0.0 < float(lr_factor) < 1.0:
            raise ValueError(f"DivergenceGuard lr_factor must lie in (0, 1), got {lr_factor}")
        if int(max_rollbacks) < 0:
            raise ValueError(f"DivergenceGuard max_rollbacks must be >= 0, got {max_rollbacks}")
        self.checkpoint = TrainingCheckpoint(good_path, network, optimizer, frame)  # what a good state holds
        self.good_path = Path(good_path)
        self.interval, self.max_rollbacks, self.lr_factor = max(1, int(interval)), int(max_rollbacks), float(lr_factor)
        self._bad_loss: int | None = None
        self._good_scores: dict | None = None  # the last good validation's, read back from good_path after a resume

    def _fell(self, scores: dict) -> bool:
        """Whether ``scores`` :func:`collapsed` and fell more than the margin below the last good validation's."""
        if not collapsed(scores):
            return False
        if self._good_scores is None and self.good_path.is_file():
            self._good_scores = dict(load_checkpoint(self.good_path).get("validation") or {})
        good = self._good_scores or {}
        keys = [k for k in scores if k.startswith("val_dice@") and k in good]
        return bool(keys) and all(float(scores[k]) < float(good[k]) - COLLAPSE_MARGIN for k in keys)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _any_rank(self, flag: bool) -> bool:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return flag
        device = next(self.checkpoint.model.parameters()).device
        value = torch.tensor([float(flag)], device=device)
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        return bool(value.item() > 0)

    def __call__(self, engine: Engine) -> None:
        r = _record(engine)
        k = int(r["iteration"])
        if self._bad_loss is None and not torch.isfinite(torch.tensor(float(r["loss"]))):
            self._bad_loss = k
        if not (k % self.interval == 0 or k == r.get("total")):
            return
        scores = engine.state.metrics if getattr(engine.state, "metrics_iteration", None) == k else {}
        bad_scores = is_main_process() and self._fell(scores)
        if not self._any_rank(self._bad_loss is not None or bad_scores):
            if is_main_process():
                save_checkpoint({**self.checkpoint.state(k, r["level"]), "validation": dict(scores)}, self.good_path)
                self._good_scores = dict(scores) if scores else self._good_scores
            return
        reasons = [f"non-finite training loss at iteration {self._bad_loss}"] if self._bad_loss is not None else []
        if bad_scores:
            dice = ", ".join(f"{n} {v:.3f}" for n, v in scores.items() if n.startswith("val_dice"))
            reasons.append(f"validation at iteration {k} below no registration and the last good validation at "
                           f"every λ ({dice})")
        reason = "; ".join(reasons) or "another process diverged"
        self._bad_loss = None
        groups = self.checkpoint.optimizer.param_groups
        done = int(groups[0].get("rollbacks", 0))
        if done >= self.max_rollbacks or not self.good_path.is_file():
            why = (f"after {done} rollback(s) (max_rollbacks {self.max_rollbacks})" if self.good_path.is_file()
                   else f"before any good validation ({self.good_path} does not exist)")
            raise RuntimeError(f"training diverged: {reason}, {why}; lower the learning rate (optimizer#lr) or "
                               f"raise max_rollbacks")
        logger.warning("training diverged: %s; rolling back to %s with the learning rate x%g", reason,
                       self.good_path, self.lr_factor)
        engine.state.rollback = {"iteration": k, "path": str(self.good_path), "lr_factor": self.lr_factor,
                                 "reason": reason}
        engine.terminate()


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
