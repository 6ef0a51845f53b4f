# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The cLapIRN trainer: λ sampled every iteration, progressive levels, exact resume.

A MONAI :class:`~monai.engines.Trainer` (an ignite engine) with its own ``_iteration``, shaped like the model zoo's
trainers: the network, ``optimizer``, ``loss_function`` and ``train_data_loader`` are objects the bundle config
builds (``bundle/configs/train.yaml``: ``network``, ``optimizer``, ``loss``, ``train#dataloader``), and
checkpointing, validation and logging are handlers (``train#handlers``: :class:`~cir_monai.engines.handlers.
TrainingCheckpoint`, :class:`~cir_monai.engines.validation.LevelValidation`, MONAI's ``StatsHandler`` …); any
MONAI or ignite handler attaches as to MONAI's own trainers (``LrScheduleHandler``, ``CheckpointSaver``,
``EarlyStopHandler``, ``CheckpointLoader``, which MONAI Label inserts). ``_iteration`` is not
``SupervisedTrainer``'s: one step trains the levels of the progressive schedule at a λ sampled for that step.

Everything an iteration uses is a pure function of its global index ``k`` (the pair: item ``k`` of the training
data set, read through :class:`~cir_monai.data.training.StepSampler`; λ: :func:`~cir_monai.engines.schedule.
sample_lambda`), so a run resumed from its checkpoint (model, optimizer, iteration, RNG states) reproduces the
losses of an uninterrupted run exactly on the same machine.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.engines import Trainer
from monai.engines.workflow import Workflow
from torch.utils.data import DataLoader, Dataset

from cir_monai.data.training import StepSampler
from cir_monai.defaults import default_device
from cir_monai.engines.handlers import TrainingCheckpoint, default_handlers, is_main_process
from cir_monai.engines.schedule import LevelSchedule, sample_lambda
from cir_monai.engines.validation import validate
from cir_monai.frame import model_frame
from cir_monai.io import load_network, save_model_file
from cir_monai.io.checkpoint import load_checkpoint, save_checkpoint
from cir_monai.losses import CLapIRNLoss
from cir_monai.networks import unwrap
from cir_monai.runtime import rank_and_world

__all__ = ["CLapIRNTrainer", "validate", "CHECKPOINT_FILE"]

logger = logging.getLogger("cir_monai.train")

#: the training state's file in the output folder (:class:`TrainingCheckpoint` writes it, a re-run resumes from it)
CHECKPOINT_FILE = "checkpoint.pt"


def step_loader(data: Dataset | DataLoader) -> DataLoader:
    """``data`` as a loader of training steps: a ``DataLoader`` whose sampler is a :class:`StepSampler` as given,
    or a data set wrapped in one (batch 1, no workers).

    Raises:
        ValueError: a ``DataLoader`` with another sampler, or whose batch size differs from its sampler's.
    """
    if not isinstance(data, DataLoader):
        return DataLoader(data, batch_size=1, sampler=StepSampler(batch_size=1), num_workers=0)
    if not isinstance(data.sampler, StepSampler):
        raise ValueError(f"the training DataLoader needs a cir_monai.data.training.StepSampler as its sampler (exact "
                         f"resume, one item per process and step), got {type(data.sampler).__name__}")
    if data.batch_size != data.sampler.batch_size:
        raise ValueError(f"the training DataLoader's batch_size ({data.batch_size}) differs from its StepSampler's "
                         f"({data.sampler.batch_size})")
    return data


class CLapIRNTrainer(Trainer):
    """Train a :class:`CLapIRN` on pairs with a fresh λ every iteration: a MONAI ``Trainer``.

    Progress: a log line every ``log_every`` iterations with the losses, seconds per iteration
    (of the current level: a moving average over the recent log intervals, so a slow start or a
    validation pass does not skew it) and an ETA that assumes each finer level costs
    ``LEVEL_COST_RATIO`` times the current one per iteration.

    Args:
        network: the model (wrapped in ``DistributedDataParallel`` for multi-GPU runs).
        train_data_loader: a ``DataLoader`` over the training pairs with a :class:`StepSampler` (the bundle's
            ``train#dataloader``), or a map-style data set (read one pair per step); item ``k`` is a pair dict of
            ``(1, *S)`` tensors.
        output_dir: ``checkpoint.pt`` (:data:`CHECKPOINT_FILE`, resumed from), ``model.pt`` and the logs go here.
        optimizer: over the network's parameters (the bundle's ``optimizer``; ``None``: Adam at 1e-4, the paper,
            fused on CPU and CUDA).
        loss_function: a :class:`~cir_monai.losses.CLapIRNLoss` (the bundle's ``loss``; ``None``: the paper's
            objective).
        iterations: steps per pyramid level, coarse to fine (the paper: 30000, 30000, 60000).
        freeze_steps: steps at the start of each level > 1 with the lower levels frozen (3000).
        lam_sampling: ``"uniform"`` on [0, λ_max] (the paper) or ``"loguniform"``.
        lam_fixed: train at this one λ instead (the LapIRN baseline, ``conditioning="none"``).
        init_from: fine-tuning: start from the weights of this model file (this project's
            ``model.pt``/``checkpoint.pt`` or the authors' ``.pth``; the architecture must match).
            Ignored when resuming from ``output_dir/checkpoint.pt``.
        frame: the frame the model is trained in (see :mod:`cir_monai.frame`), saved with the model
            so inference predicts in it.
        log_every: the period of the trainer's history and of the default handlers' logging, iterations.
        device: ``"cuda"`` when available else ``"cpu"`` by default.
        amp: bfloat16 autocast (CUDA or CPU).
        resume: continue from ``output_dir/checkpoint.pt`` when it exists.
        seed: seeds λ sampling (the data carry their own seeds).
        max_epochs: ``None`` (default): train for ``iterations``. A number: train for ``max_epochs``
            passes over the data set (``len / (batch size · processes)`` steps each), spread over
            the levels in the proportions of ``iterations`` (:meth:`LevelSchedule.scaled_to`), which
            is how MONAI Label's ``BundleTrainTask`` sets the length of a run. Ignored, with a
            warning, for generated data sets (no epoch).
        handlers: ignite handlers (anything with ``attach(engine)``), attached in order after the trainer's own
            bookkeeping: checkpointing, validation, console, ``metrics.jsonl`` and TensorBoard (the bundle's
            ``train#handlers``, which MONAI Label extends). ``None``: a :class:`TrainingCheckpoint` every 500
            iterations and :func:`~cir_monai.engines.handlers.default_handlers`.
        fresh_optimizer_per_level: clear the optimizer's state (Adam's moments and step count) at the first step of
            each level > 1, as the authors' code starts a new Adam per level (``False``: one Adam for the run).
        final_lr_fraction: decay the learning rate over the last level by a cosine to this fraction of the
            optimizer's (:meth:`LevelSchedule.lr_factor`; 1: constant, the paper's). The 2D reproduction needs it: at
            a constant 1e-3 the λ = 0.1 baseline's validation Dice fell from 0.72 to 0.62–0.66 late in level 3.
        bundle_model: also write the final weights here as a plain state dict, the model zoo's
            ``models/model.pt`` (``None`` or ``""``: only ``output_dir/model.pt``; from MONAI's command line pass
            ``""``, since it drops overrides whose value is ``None``).
    """

    LEVEL_COST_RATIO = 5.0

    def __init__(
        self,
        network: torch.nn.Module,
        train_data_loader: DataLoader | Dataset,
        output_dir: str | os.PathLike,
        optimizer: torch.optim.Optimizer | None = None,
        loss_function: CLapIRNLoss | None = None,
        iterations: Sequence[int] = (30000, 30000, 60000),
        freeze_steps: int = 3000,
        lam_sampling: str = "uniform",
        lam_fixed: float | None = None,
        init_from: str | os.PathLike | None = None,
        frame: dict | None = None,
        log_every: int = 50,
        device: str | torch.device | None = None,
        amp: bool = False,
        resume: bool = True,
        seed: int = 0,
        max_epochs: int | None = None,
        handlers: Sequence | None = None,
        bundle_model: str | os.PathLike | None = None,
        fresh_optimizer_per_level: bool = False,
        final_lr_fraction: float = 1.0,
    ) -> None:
        self.device = default_device(device)
        self.network = network.to(self.device)
        self.model = unwrap(network)
        self.loader = step_loader(train_data_loader)
        self.output_dir = Path(output_dir)
        self.schedule = LevelSchedule(tuple(int(i) for i in iterations), int(freeze_steps))
        # one epoch of the schedule's steps (set to the steps left when run() resumes); outputs are not decollated
        # (an iteration's output is already the one-item list MONAI's handlers read); bf16 autocast needs no scaler
        super().__init__(device=self.device, max_epochs=1, data_loader=self.loader,
                         epoch_length=self.schedule.total, decollate=False, amp=False)
        self.batch_size = int(self.loader.batch_size)
        self.rank, self.world = rank_and_world()
        if max_epochs is not None:
            dataset = self.loader.dataset
            length = len(dataset) if hasattr(dataset, "__len__") else None
            if length is None or getattr(dataset, "generated", False):
                logger.warning("max_epochs=%s ignored: the training data are generated (no epochs); "
                               "training for iterations=%s", max_epochs, list(self.schedule.iterations))
            else:
                per_step = self.batch_size * self.world  # every process takes its own items each step
                steps = int(max_epochs) * max(1, -(-length // per_step))
                self.schedule = self.schedule.scaled_to(steps)
        self.lam_sampling = lam_sampling
        self.lam_fixed = None if lam_fixed is None else float(lam_fixed)
        if self.lam_fixed is not None and not 0.0 <= self.lam_fixed <= self.model.lam_max:
            raise ValueError(f"lam_fixed must lie in [0, {self.model.lam_max:g}], got {lam_fixed}")
        sample_lambda(0, 1, mode=lam_sampling)  # fail now on a bad mode, not after setup
        if len(self.schedule.iterations) != self.model.num_levels:
            raise ValueError(
                f"iterations has {len(self.schedule.iterations)} entries, "
                f"the network has {self.model.num_levels} levels"
            )
        self.loss = loss_function or CLapIRNLoss(self.model.spatial_dims, self.model.num_levels)
        if optimizer is None:  # fused: one kernel per step instead of a loop over ~230 parameter tensors
            optimizer = torch.optim.Adam(self.network.parameters(), lr=1e-4,
                                         fused=self.device.type in ("cpu", "cuda"))
        self.optimizer = optimizer
        self.init_from = None if init_from in (None, "") else Path(init_from)
        if frame is None:
            logger.warning("no frame given: the model will be recorded as trained on any grid (spacing None); "
                           "pass frame={'spacing': ...} so that inference resamples inputs to the training grid")
        self.frame = model_frame(frame, self.model)
        self.log_every = int(log_every)
        self.amp, self.resume, self.seed = bool(amp), bool(resume), int(seed)
        self.bundle_model = None if bundle_model in (None, "") else Path(bundle_model)
        self.fresh_optimizer_per_level = bool(fresh_optimizer_per_level)
        if not 0.0 < float(final_lr_fraction) <= 1.0:
            raise ValueError(f"final_lr_fraction must lie in (0, 1], got {final_lr_fraction}")
        self.final_lr_fraction = float(final_lr_fraction)
        self._base_lrs = [float(group["lr"]) for group in self.optimizer.param_groups]  # before a resume loads any
        self.history: list[dict] = []
        self.start_iteration = 0
        self._level_seen, self._level_t0, self._level_k0, self._rate = 0, 0.0, 0, None
        self.add_event_handler(Events.ITERATION_COMPLETED, self._after_iteration)
        if handlers is None:
            handlers = [TrainingCheckpoint(self.checkpoint_path, self.network, self.optimizer, self.frame, 500),
                        *default_handlers(self.output_dir, self.log_every)]
        for handler in handlers:  # after the trainer's own bookkeeping: records are complete when they run
            handler.attach(self)
        self.add_event_handler(Events.ITERATION_COMPLETED, self._record_validation)

    @property
    def engine(self) -> CLapIRNTrainer:
        """The ignite engine that runs the steps: the trainer itself (a MONAI ``Trainer``)."""
        return self

    # ----------------------------------------------------------------- state
    @property
    def checkpoint_path(self) -> Path:
        return self.output_dir / CHECKPOINT_FILE

    def load_state(self, state: dict) -> None:
        """Restore a :class:`TrainingCheckpoint` state: weights, optimizer, RNG, iteration. The optimizer keeps this
        run's choice of the fused kernel (``load_state_dict`` would restore the saving run's)."""
        fused = [group.get("fused") for group in self.optimizer.param_groups]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group, choice in zip(self.optimizer.param_groups, fused):
            group["fused"] = choice
        if any(fused):  # fused kernels read the step counter on the parameter's device
            for param, slot in self.optimizer.state.items():
                if torch.is_tensor(slot.get("step")):
                    slot["step"] = slot["step"].to(device=param.device, dtype=torch.float32)
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"].get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.start_iteration = int(state["iteration"])

    def _maybe_resume(self) -> None:
        if self.resume and self.checkpoint_path.is_file():
            self.load_state(load_checkpoint(self.checkpoint_path, map_location=self.device))
            if is_main_process():
                logger.info("resumed from %s at iteration %d", self.checkpoint_path, self.start_iteration)
        elif self.init_from is not None:
            source = load_network(self.init_from)
            if source.config != self.model.config:
                raise ValueError(
                    f"init_from {self.init_from}: its architecture {source.config} differs from the network's "
                    f"{self.model.config}"
                )
            self.model.load_state_dict(source.state_dict())
            if is_main_process():
                logger.info("fine-tuning from %s", self.init_from)

    # ------------------------------------------------------------------ step
    def _set_trainable(self, level: int, frozen: bool) -> None:
        """The current level trains; the lower ones too unless ``frozen``, and so does CIR-CM's shared mapping
        network, which conditions the lower levels as well (the authors freeze it with them)."""
        for index, module in enumerate(self.model.levels):
            trainable = index == level - 1 or (index < level - 1 and not frozen)
            module.requires_grad_(trainable)
        if self.model.mapping is not None:
            self.model.mapping.requires_grad_(not frozen)

    def _iteration(self, engine: Engine, batch: dict) -> list[dict]:  # type: ignore[override]
        """One optimisation step on the batch of global step ``k``; the output is ``[record]``, a one-item list as
        MONAI's trainers decollate it, so MONAI handlers read it with their defaults (``StatsHandler``) or
        ``from_engine(["loss"], first=True)``."""
        k = self.start_iteration + engine.state.iteration
        level, frozen = self.schedule.at(k)
        self._set_trainable(level, frozen)
        if self.fresh_optimizer_per_level and self.schedule.starts_level(k):
            self.optimizer.state.clear()  # a pure function of k: a resumed run resets at the same step
        scaled = any("lr_scale" in group for group in self.optimizer.param_groups)  # a DivergenceGuard rollback's
        if self.final_lr_fraction != 1.0 or scaled:  # the last level's cosine decay, a pure function of k as well
            factor = self.schedule.lr_factor(k, self.final_lr_fraction)
            for group, base in zip(self.optimizer.param_groups, self._base_lrs):
                group["lr"] = base * factor * group.get("lr_scale", 1.0)
        keys = (("fixed", "moving") + (("fixed_label", "moving_label") if self.loss.label_weight > 0 else ())
                + (("ddf_truth",) if self.loss.field_weight > 0 else ()))
        missing = [key for key in keys if key not in batch]
        if missing:
            why = [f"training step {k} lacks {missing}"]
            if {"fixed_label", "moving_label"} & set(missing):
                why.append("label_weight > 0 needs labelled training pairs")
            if "ddf_truth" in missing:
                why.append("field_weight > 0 needs pairs with their true fields: only train.yaml's own train#dataset "
                           "(the embedded pairs, with_truth) has them; set loss#field_weight to 0")
            raise ValueError(": ".join(why))
        batch = {key: batch[key].to(self.device) for key in keys}
        rank = self.rank
        if self.lam_fixed is not None:
            lam = torch.full((self.batch_size,), self.lam_fixed)
        else:
            lam = sample_lambda(k * self.world + rank, self.batch_size, self.model.lam_max, self.lam_sampling,
                                self.seed)
        lam = lam.to(self.device)
        self.network.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.network(batch["moving"], batch["fixed"], lam, active_levels=level)
        terms = self.loss(out, lam, batch.get("moving_label"), batch.get("fixed_label"),
                          ddf_truth=batch.get("ddf_truth"))
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        return [{
            "iteration": k,
            "level": level,
            "frozen": frozen,
            "loss": terms["loss"].item(),
            "similarity": terms["similarity"].mean().item(),
            "smoothness": terms["smoothness"].mean().item(),
            "label": terms["label"].mean().item(),
            "field": terms["field"].mean().item(),
            "lam": lam.mean().item(),
        }]

    # ------------------------------------------------------------ bookkeeping
    def _after_iteration(self, engine: Engine) -> None:
        """Complete the record: the schedule's total, seconds per iteration of this level, ETA."""
        out = engine.state.output[0]
        k = out["iteration"]
        total = self.schedule.total
        level_start = sum(self.schedule.iterations[: out["level"] - 1])
        now = time.perf_counter()
        if out["level"] != self._level_seen:  # time per iteration is measured per level
            self._level_seen, self._level_t0, self._level_k0 = out["level"], now, k
            self._rate = None
        if k % self.log_every == 0 or k == total:
            interval = (now - self._level_t0) / max(k - self._level_k0, 1)
            self._level_t0, self._level_k0 = now, k
            self._rate = interval if self._rate is None else 0.7 * self._rate + 0.3 * interval
        rate = self._rate if self._rate is not None else (now - self._level_t0) / max(k - self._level_k0, 1)
        remaining = level_start + self.schedule.iterations[out["level"] - 1] - k
        # each later level costs LEVEL_COST_RATIO times the current one per iteration
        later = sum(n * rate * self.LEVEL_COST_RATIO ** (i + 1)
                    for i, n in enumerate(self.schedule.iterations[out["level"]:]))
        out.update(total=total, seconds_per_iteration=rate, eta_seconds=rate * remaining + later)
        if k % self.log_every == 0 or k == total:
            self.history.append({**out, "frozen": int(out["frozen"])})

    def _record_validation(self, engine: Engine) -> None:
        """After the handlers: validation scores of this iteration (:class:`LevelValidation`) into the history."""
        k = engine.state.output[0]["iteration"]
        if getattr(engine.state, "metrics_iteration", None) == k:
            self.history.append({"iteration": k, **engine.state.metrics})

    def _roll_back(self, rollback: dict) -> None:
        """Reload the :class:`~cir_monai.engines.handlers.DivergenceGuard`'s last good state, scale the learning rate
        by its factor for the rest of the run (kept in the optimizer's groups, so checkpoints carry it) and run on
        from there: a new ignite run over the steps left, as a resume would."""
        self.state.rollback = None
        # the scale and count so far come from this run, not from the good state (which may predate a rollback)
        before = [(float(g.get("lr_scale", 1.0)), int(g.get("rollbacks", 0))) for g in self.optimizer.param_groups]
        good = load_checkpoint(rollback["path"], map_location=self.device)
        self.load_state(good)
        for group, (scale, count) in zip(self.optimizer.param_groups, before):  # _iteration applies the scale
            group["lr_scale"] = scale * float(rollback["lr_factor"])
            group["rollbacks"] = count + 1
        record = {"iteration": self.start_iteration, "rollback_from": int(rollback["iteration"]),
                  "lr_scale": self.optimizer.param_groups[0]["lr_scale"], "reason": rollback["reason"]}
        self.history.append(record)
        if is_main_process():  # the rolled-back state with its new rate is what a resume must start from
            save_checkpoint({**good, "optimizer": self.optimizer.state_dict()}, self.checkpoint_path)
            with open(self.output_dir / "metrics.jsonl", "a") as f:  # the curve's reader skips the dead branch
                f.write(json.dumps(record) + "\n")
            logger.warning("rolled back from iteration %d to %d; learning rate x%g from here", rollback["iteration"],
                           self.start_iteration, record["lr_scale"])
        total = self.schedule.total
        self.loader.sampler.start = self.start_iteration
        self.set_data(self.loader)  # a fresh iterator from the reloaded step
        self.state.max_epochs = None  # ignite starts a new run instead of resuming the stopped one
        Engine.run(self, data=self.loader, max_epochs=1, epoch_length=total - self.start_iteration)

    # ------------------------------------------------------------------- run
    def run(self) -> dict:  # type: ignore[override]
        """Train to the end of the schedule (resuming first when a checkpoint exists).

        Returns:
            ``{"iterations": total, "model": path of model.pt, "last": last logged record}``.
        """
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._maybe_resume()
        total = self.schedule.total
        if self.start_iteration < total:
            if is_main_process():
                logger.info(
                    "training iterations %d..%d of %d on %s (%d process(es))",
                    self.start_iteration + 1, total, total, self.device, self.world,
                )
            self.loader.sampler.start = self.start_iteration
            self.state.max_epochs, self.state.epoch_length = 1, total - self.start_iteration
            Workflow.run(self)  # Trainer.run would make a CUDA GradScaler for amp; bf16 autocast needs none
            while getattr(self.state, "rollback", None):  # a DivergenceGuard stopped the run
                self._roll_back(self.state.rollback)
        model_path = self.output_dir / "model.pt"
        if is_main_process():
            save_model_file(self.model, model_path, self.frame)
            if self.bundle_model is not None:
                save_model_file(self.model, self.bundle_model, self.frame, plain=True)
                logger.info("weights written to %s (plain state dict)", self.bundle_model)
        return {"iterations": total, "model": str(model_path), "last": self.history[-1] if self.history else None}
