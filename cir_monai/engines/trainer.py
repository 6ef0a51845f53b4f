# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The cLapIRN trainer: λ sampled every iteration, progressive levels, validation at several λ, exact resume.

Built on an ignite :class:`~ignite.engine.Engine` (as MONAI's engines are). Everything an
iteration uses is a pure function of its global index ``k`` (the pair: item ``k`` of the
training dataset; λ: :func:`~cir_monai.engines.schedule.sample_lambda`), so a run resumed
from a checkpoint (model, optimizer, iteration, RNG states) reproduces the losses of an
uninterrupted run exactly on the same machine.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from torch.utils.data import Dataset

from cir_monai.defaults import default_device
from cir_monai.engines.evaluation import score_field
from cir_monai.engines.handlers import default_handlers, is_main_process
from cir_monai.engines.schedule import LevelSchedule, sample_lambda
from cir_monai.frame import model_frame
from cir_monai.io import load_network
from cir_monai.io.checkpoint import load_checkpoint, save_checkpoint
from cir_monai.losses import CLapIRNLoss
from cir_monai.metrics import present_labels
from cir_monai.networks import CLapIRN

__all__ = ["CLapIRNTrainer", "validate"]

logger = logging.getLogger("cir_monai.train")


def _unwrap(net: torch.nn.Module) -> CLapIRN:
    return net.module if hasattr(net, "module") else net


@torch.no_grad()
def validate(
    network: CLapIRN, pairs: Sequence[dict], lams: Sequence[float], device: torch.device,
    active_levels: int | None = None, before: bool = True,
) -> dict[str, float]:
    """Mean Dice, std|J| and % folding per λ over validation pairs, scored as the evaluator scores
    (:func:`~cir_monai.engines.evaluation.score_field`, on ``device``; labels present in both images of a pair).

    Args:
        pairs: ``(1, 1, *S)`` tensors ``fixed``, ``moving``, ``fixed_label``, ``moving_label``.
        active_levels: the pyramid levels trained so far (progressive training).
        before: also score the unregistered pairs (``dice_before``; the trainer does it once).

    Returns:
        ``{"dice@λ": ..., "jac_std@λ": ..., "folding_pct@λ": ...[, "dice_before": ...]}``.
    """
    net = _unwrap(network)
    was_training = net.training
    net.eval()
    sums: dict[str, float] = {}

    def add(key: str, value: float) -> None:
        sums[key] = sums.get(key, 0.0) + value

    for pair in pairs:
        fixed, moving = pair["fixed"].to(device), pair["moving"].to(device)
        f_lab, m_lab = pair["fixed_label"].round().long().to(device), pair["moving_label"].round().long().to(device)
        labels = present_labels(f_lab, m_lab)
        if before:
            add("dice_before", score_field(torch.zeros(1, f_lab.ndim - 2, *f_lab.shape[2:], device=device),
                                           m_lab, f_lab, labels)[0]["dice_mean"])
        for lam in lams:
            scores, _ = score_field(net(moving, fixed, float(lam), active_levels=active_levels), m_lab, f_lab, labels)
            add(f"dice@{lam:g}", scores["dice_mean"])
            add(f"jac_std@{lam:g}", scores["jac_std"])
            add(f"folding_pct@{lam:g}", scores["folding_pct"])
    net.train(was_training)
    return {k: v / max(len(pairs), 1) for k, v in sums.items()}


class CLapIRNTrainer:
    """Train a :class:`CLapIRN` on pairs with a fresh λ every iteration.

    Progress: a log line every ``log_every`` iterations with the losses, seconds per iteration
    (of the current level: a moving average over the recent log intervals, so a slow start or a
    validation pass does not skew it) and an ETA that assumes each finer level costs
    ``LEVEL_COST_RATIO`` times the current one per iteration.

    Args:
        network: the model (wrapped in ``DistributedDataParallel`` for multi-GPU runs).
        train_data: map-style dataset; item ``k`` is a pair dict of ``(1, *S)`` tensors.
        output_dir: checkpoints, ``model.pt``, ``metrics.jsonl`` and TensorBoard logs go here.
        iterations: steps per pyramid level, coarse to fine (the paper: 30000, 30000, 60000).
        freeze_steps: steps at the start of each level > 1 with the lower levels frozen (3000).
        lr: Adam learning rate (1e-4, constant).
        batch_size: pairs per step (per process).
        lam_sampling: ``"uniform"`` on [0, λ_max] (the paper) or ``"loguniform"``.
        lam_fixed: train at this one λ instead (the LapIRN baseline, ``conditioning="none"``).
        folding_weight: weight of the anti-folding term (0).
        label_weight: weight of the label Dice term (0 = the paper's objective; needs
            ``fixed_label``/``moving_label`` in the training items).
        init_from: fine-tuning: start from the weights of this model file (this project's
            ``model.pt``/``checkpoint.pt`` or the authors' ``.pth``; the architecture must match).
            Ignored when resuming from ``output_dir/checkpoint.pt``.
        frame: the frame the model is trained in (see :mod:`cir_monai.frame`), saved with every
            checkpoint so inference predicts in it.
        val_pairs: validation pairs (``(1, 1, *S)`` tensors with labels) or ``None``.
        val_every: validate every this many iterations (and at the end).
        val_lams: λ values validated.
        checkpoint_every: write ``checkpoint.pt`` every this many iterations (and at the end).
        log_every: console/TensorBoard log period, iterations.
        device: ``"cuda"`` when available else ``"cpu"`` by default.
        amp: bfloat16 autocast (CUDA or CPU).
        resume: continue from ``output_dir/checkpoint.pt`` when it exists.
        seed: seeds λ sampling (the data carry their own seeds).
        max_epochs: ``None`` (default): train for ``iterations``. A number: train for ``max_epochs``
            passes over ``train_data`` (``len(train_data) / (batch_size · processes)`` steps each), spread over
            the levels in the proportions of ``iterations`` (:meth:`LevelSchedule.scaled_to`), which
            is how MONAI Label's ``BundleTrainTask`` sets the length of a run. Ignored, with a
            warning, for generated data sets (no epoch).
        handlers: ignite handlers (anything with ``attach(engine)``) attached to the training engine:
            the console, ``metrics.jsonl`` and TensorBoard logging (:mod:`cir_monai.engines.handlers`;
            ``None``: :func:`~cir_monai.engines.handlers.default_handlers`), and any others (the
            bundle's ``train#handlers``, which MONAI Label extends, e.g. with a ``CheckpointLoader``).
        bundle_model: also write the final weights here as a plain state dict, the model zoo's
            ``models/model.pt`` (``None``: only ``output_dir/model.pt``).
    """

    LEVEL_COST_RATIO = 5.0

    def __init__(
        self,
        network: torch.nn.Module,
        train_data: Dataset,
        output_dir: str | os.PathLike,
        iterations: Sequence[int] = (30000, 30000, 60000),
        freeze_steps: int = 3000,
        lr: float = 1e-4,
        batch_size: int = 1,
        lam_sampling: str = "uniform",
        lam_fixed: float | None = None,
        folding_weight: float = 0.0,
        label_weight: float = 0.0,
        init_from: str | os.PathLike | None = None,
        frame: dict | None = None,
        val_pairs: Sequence[dict] | None = None,
        val_every: int = 1000,
        val_lams: Sequence[float] = (0.1, 1.0, 4.0),
        checkpoint_every: int = 500,
        log_every: int = 50,
        device: str | torch.device | None = None,
        amp: bool = False,
        resume: bool = True,
        seed: int = 0,
        max_epochs: int | None = None,
        handlers: Sequence | None = None,
        bundle_model: str | os.PathLike | None = None,
    ) -> None:
        self.device = default_device(device)
        self.network = network.to(self.device)
        self.model = _unwrap(network)
        self.train_data = train_data
        self.output_dir = Path(output_dir)
        self.schedule = LevelSchedule(tuple(int(i) for i in iterations), int(freeze_steps))
        self.batch_size = int(batch_size)
        self.rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if max_epochs is not None:
            length = len(train_data) if hasattr(train_data, "__len__") else None
            if length is None or getattr(train_data, "generated", False):
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
        self.loss = CLapIRNLoss(self.model.spatial_dims, self.model.num_levels, folding_weight,
                                label_weight=label_weight)
        self.init_from = None if init_from in (None, "") else Path(init_from)
        if frame is None:
            logger.warning("no frame given: the model will be recorded as trained on any grid (spacing None); "
                           "pass frame={'spacing': ...} so that inference resamples inputs to the training grid")
        self.frame = model_frame(frame, self.model)
        if len(self.schedule.iterations) != self.model.num_levels:
            raise ValueError(
                f"iterations has {len(self.schedule.iterations)} entries, "
                f"the network has {self.model.num_levels} levels"
            )
        # one fused kernel per step instead of a loop over ~230 parameter tensors (~10 ms less per CPU iteration)
        self._fused = self.device.type in ("cpu", "cuda")
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=lr, fused=self._fused)
        self.val_pairs = list(val_pairs or [])
        self._dice_before: float | None = None
        self.val_every, self.val_lams = int(val_every), [float(v) for v in val_lams]
        self.checkpoint_every, self.log_every = int(checkpoint_every), int(log_every)
        self.amp, self.resume, self.seed = bool(amp), bool(resume), int(seed)
        self.bundle_model = None if bundle_model in (None, "") else Path(bundle_model)
        self.history: list[dict] = []
        self.start_iteration = 0
        self._level_seen, self._level_t0, self._level_k0, self._rate = 0, 0.0, 0, None
        self.engine = Engine(self._step)
        self.engine.add_event_handler(Events.ITERATION_COMPLETED, self._after_iteration)
        if handlers is None:
            handlers = default_handlers(self.output_dir, self.log_every)
        for handler in handlers:  # after the trainer's own bookkeeping: records are complete when they run
            handler.attach(self.engine)

    # ----------------------------------------------------------------- state
    @property
    def checkpoint_path(self) -> Path:
        return self.output_dir / "checkpoint.pt"

    def state_dict(self, iteration: int) -> dict:
        return {
            "model": self.model.state_dict(),
            "network": self.model.config,
            "frame": self.frame,
            "optimizer": self.optimizer.state_dict(),
            "iteration": iteration,
            "level": self.schedule.at(max(iteration, 1))[0],
            "schedule": {"iterations": list(self.schedule.iterations), "freeze_steps": self.schedule.freeze_steps},
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "seed": self.seed,
        }

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # load_state_dict also restores the saving run's choice
            group["fused"] = self._fused
        if self._fused:  # fused kernels read the step counter on the parameter's device
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
    def _batch(self, k: int) -> dict[str, torch.Tensor]:
        first = ((k - 1) * self.world + self.rank) * self.batch_size
        items = [self.train_data[first + j] for j in range(self.batch_size)]
        keys = ("fixed", "moving") + (("fixed_label", "moving_label") if self.loss.label_weight > 0 else ())
        missing = [key for key in keys if key not in items[0]]
        if missing:
            raise ValueError(f"training item {first} lacks {missing}: label_weight > 0 needs labelled training pairs")
        return {key: torch.stack([it[key] for it in items]).to(self.device) for key in keys}

    def _set_trainable(self, level: int, frozen: bool) -> None:
        for index, module in enumerate(self.model.levels):
            trainable = index == level - 1 or (index < level - 1 and not frozen)
            module.requires_grad_(trainable)

    def _step(self, engine: Engine, k: int) -> list[dict]:
        """One optimisation step; the output is ``[record]``, a one-item list as MONAI's trainers decollate it,
        so MONAI handlers read it with their defaults (``StatsHandler``) or ``from_engine(["loss"], first=True)``."""
        level, frozen = self.schedule.at(k)
        self._set_trainable(level, frozen)
        batch = self._batch(k)
        if self.lam_fixed is not None:
            lam = torch.full((self.batch_size,), self.lam_fixed)
        else:
            lam = sample_lambda(k * self.world + self.rank, self.batch_size, self.model.lam_max, self.lam_sampling,
                                self.seed)
        lam = lam.to(self.device)
        self.network.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.network(batch["moving"], batch["fixed"], lam, active_levels=level)
        terms = self.loss(out, lam, batch.get("moving_label"), batch.get("fixed_label"))
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
            "lam": lam.mean().item(),
        }]

    # ------------------------------------------------------------ bookkeeping
    def _after_iteration(self, engine: Engine) -> None:
        """Complete the record (total, seconds per iteration, ETA), validate and checkpoint when due.

        Printing and files are the handlers' (:mod:`cir_monai.engines.handlers`), attached after this.
        """
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
        # later levels: ~5x the time per iteration each (measured: docs/benchmarks.md, training)
        later = sum(n * rate * self.LEVEL_COST_RATIO ** (i + 1)
                    for i, n in enumerate(self.schedule.iterations[out["level"]:]))
        out.update(total=total, seconds_per_iteration=rate, eta_seconds=rate * remaining + later)
        if k % self.log_every == 0 or k == total:
            self.history.append({**out, "frozen": int(out["frozen"])})
        if self.val_pairs and (k % self.val_every == 0 or k == total) and is_main_process():
            scores = validate(self.network, self.val_pairs, self.val_lams, self.device, active_levels=out["level"],
                              before=self._dice_before is None)
            self._dice_before = scores.setdefault("dice_before", self._dice_before)  # the pairs do not change
            logger.info("validation at %d: %s", k, ", ".join(f"{n} {v:.4f}" for n, v in scores.items()))
            engine.state.metrics = {f"val_{n}": v for n, v in scores.items()}  # MONAI's place for metrics
            engine.state.metrics_iteration = k
            self.history.append({"iteration": k, **engine.state.metrics})
        if (k % self.checkpoint_every == 0 or k == total) and is_main_process():
            save_checkpoint(self.state_dict(k), self.checkpoint_path)

    # ------------------------------------------------------------------- run
    def run(self) -> dict:
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
            self.engine.run(range(self.start_iteration + 1, total + 1), max_epochs=1)
        model_path = self.output_dir / "model.pt"
        if is_main_process():
            save_checkpoint({"model": self.model.state_dict(), "network": self.model.config, "frame": self.frame},
                            model_path)
            if self.bundle_model is not None:
                save_checkpoint(self.model.state_dict(), self.bundle_model)
                logger.info("weights written to %s (plain state dict)", self.bundle_model)
        return {"iterations": total, "model": str(model_path), "last": self.history[-1] if self.history else None}
