# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Validation during training: the pyramid levels trained so far, scored at several λ on labelled pairs.

* :func:`score_pairs`: one row per pair and λ: Dice, std|J|, % folding and the network's objective (the 2D paper
  reproduction's test scores);
* :func:`validate`: mean Dice, std|J| and % folding per λ over validation pairs (the plain function).
* :class:`LevelValidator`: the same as an ignite engine over the pairs (``validate#evaluator`` in
  ``bundle/configs/train.yaml``): one iteration scores one pair at every λ, the means land in
  ``state.metrics`` at the end of its run, and handlers attach to it like to any MONAI evaluator
  (``validate#handlers``: MONAI's ``StatsHandler`` logs the scores).
* :class:`LevelValidation`: the trainer's handler that runs the validator every ``interval`` iterations and at the
  last, at the level the trainer is training (progressive training validates the levels trained so far), and puts
  its scores into the trainer's ``state.metrics`` as ``val_<name>`` (where ``metrics.jsonl`` and TensorBoard read
  them). MONAI's own ``ValidationHandler`` runs a MONAI ``Evaluator`` at epoch or iteration intervals but cannot
  pass the active level, so this is its counterpart.

Scores are :func:`~cir_monai.engines.evaluation.score_field`'s, the evaluator's, on the labels present in both
images of a pair; the field is :func:`~cir_monai.engines.prediction.predict_field`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from ignite.engine import Engine, Events

from cir_monai.defaults import default_device
from cir_monai.engines.evaluation import score_field
from cir_monai.engines.handlers import is_main_process
from cir_monai.engines.prediction import predict_field
from cir_monai.metrics import present_labels
from cir_monai.networks import unwrap

__all__ = ["score_pairs", "validate", "LevelValidator", "LevelValidation"]

logger = logging.getLogger("cir_monai.train")


#: the scores of a row and their names in validation's means (``dice@λ`` …)
_SCORES = {"dice_mean": "dice", "jac_std": "jac_std", "folding_pct": "folding_pct"}


def _pair_rows(net, pair: dict, index: int, lams: Sequence[float], device, active_levels=None, before: bool = True,
               loss=None, inferer=None) -> list[dict]:
    """The rows of one pair: the unregistered images (``before``) and each λ, with the objective when ``loss``; the
    field is ``inferer``'s (a :class:`~cir_monai.inferers.ConditionalInferer` of a plain network) when given, else
    :func:`predict_field`'s (the same call)."""
    extra = {k: v for k, v in pair.items() if isinstance(v, (int, float, str)) and k != "pair"}
    fixed, moving = pair["fixed"].to(device), pair["moving"].to(device)
    f_lab, m_lab = (pair[k].round().long().to(device) for k in ("fixed_label", "moving_label"))
    labels = present_labels(f_lab, m_lab)
    rows = []
    if before:
        identity = torch.zeros(1, f_lab.ndim - 2, *f_lab.shape[2:], device=device)
        scores, _ = score_field(identity, m_lab, f_lab, labels)
        rows.append({"method": "identity", "pair": pair.get("pair", index), **extra, "lam": "",
                     **{k: scores[k] for k in _SCORES}})
    for lam in lams:
        if inferer is None:
            ddf = predict_field(net, moving, fixed, float(lam), active_levels=active_levels)
        else:
            ddf = inferer(torch.cat([moving, fixed], 1), net, lam=float(lam), active_levels=active_levels)
        scores, _ = score_field(ddf, m_lab, f_lab, labels)
        row = {"pair": pair.get("pair", index), **extra, "lam": float(lam), **{k: scores[k] for k in _SCORES}}
        if loss is not None:
            row["objective"] = float(loss.field_objective(moving, fixed, ddf, float(lam))[0])
        rows.append(row)
    return rows


def _score_pair(network, pair: dict, lams: Sequence[float], device, active_levels, before: bool,
                inferer=None) -> dict[str, float]:
    """One pair's validation scores, named as :func:`validate` returns them."""
    scores = {}
    for row in _pair_rows(network, pair, 0, lams, device, active_levels, before, inferer=inferer):
        if row["lam"] == "":
            scores["dice_before"] = row["dice_mean"]
        else:
            scores.update({f"{name}@{row['lam']:g}": row[key] for key, name in _SCORES.items()})
    return scores


@torch.no_grad()
def score_pairs(network: torch.nn.Module, pairs: Sequence[dict], lams: Sequence[float], device=None,
                objective: bool = True) -> list[dict]:
    """One row per pair and λ (the network in evaluation mode, restored afterwards): ``pair``, ``lam``,
    ``dice_mean``, ``jac_std``, ``folding_pct`` (:func:`~cir_monai.engines.evaluation.score_field`) and, with
    ``objective``, the network's objective of its field (:meth:`~cir_monai.losses.CLapIRNLoss.field_objective`:
    similarity + λ · smoothness, lower is better), plus each pair's other plain entries (e.g. ``slice``) and a
    ``lam`` ``""`` row per pair for the unregistered images (``method`` ``"identity"`` there, else the caller's).

    Args:
        pairs: ``(1, 1, *S)`` tensors ``fixed``, ``moving``, ``fixed_label``, ``moving_label`` and optionally
            ``pair`` (an id; default the position) and other numbers or strings, copied to its rows.
    """
    from cir_monai.losses import CLapIRNLoss

    device = default_device(device)
    net = unwrap(network)
    was_training = net.training
    net.eval()
    loss = CLapIRNLoss(net.spatial_dims, net.num_levels).to(device) if objective else None
    rows = [row for index, pair in enumerate(pairs) for row in _pair_rows(net, pair, index, lams, device, loss=loss)]
    net.train(was_training)
    return rows


@torch.no_grad()
def validate(
    network: torch.nn.Module, pairs: Sequence[dict], lams: Sequence[float], device: torch.device,
    active_levels: int | None = None, before: bool = True,
) -> dict[str, float]:
    """Mean Dice, std|J| and % folding per λ over validation pairs (evaluation mode, restored afterwards).

    Args:
        pairs: ``(1, 1, *S)`` tensors ``fixed``, ``moving``, ``fixed_label``, ``moving_label``.
        active_levels: the pyramid levels trained so far (progressive training); ``None``: all.
        before: also score the unregistered pairs (``dice_before``).

    Returns:
        ``{"dice@λ": ..., "jac_std@λ": ..., "folding_pct@λ": ...[, "dice_before": ...]}``.
    """
    net = unwrap(network)
    was_training = net.training
    net.eval()
    sums: dict[str, float] = {}
    for pair in pairs:
        for key, value in _score_pair(net, pair, lams, device, active_levels, before).items():
            sums[key] = sums.get(key, 0.0) + value
    net.train(was_training)
    return {k: v / max(len(pairs), 1) for k, v in sums.items()}


class LevelValidator(Engine):
    """:func:`validate` as an ignite engine over the validation pairs, for ``validate#evaluator``.

    ``run(active_levels)`` scores every pair (one iteration each) with the network in evaluation mode (restored
    afterwards) and leaves the means in ``state.metrics``; ``dice_before`` is scored on the first run only (the
    pairs do not change) and kept. Handlers attach as to a MONAI evaluator (``validate#handlers``).

    Args:
        network: the network being trained (``DistributedDataParallel`` is looked through).
        pairs: ``(1, 1, *S)`` tensors ``fixed``, ``moving``, ``fixed_label``, ``moving_label``
            (the bundle's ``validate#dataset``); empty: validation is skipped.
        lams: λ values scored.
        device: where to score (default: CUDA when available, else the CPU).
        handlers: attached to this engine (e.g. MONAI's ``StatsHandler``).
        inferer: what predicts each field: a :class:`~cir_monai.inferers.ConditionalInferer` with ``stacked=False``
            (``train#inferer``; it is given the stacked pair, λ and the active levels); ``None``:
            :func:`~cir_monai.engines.prediction.predict_field`, the same call.
    """

    def __init__(self, network: torch.nn.Module, pairs: Sequence[dict], lams: Sequence[float] = (0.1, 1.0, 4.0),
                 device: str | torch.device | None = None, handlers: Sequence | None = None, inferer=None) -> None:
        super().__init__(self._step)
        self.network, self.pairs, self.inferer = network, list(pairs or []), inferer
        self.lams = [float(v) for v in lams]
        self.device = default_device(device)
        self.active_levels: int | None = None
        self.dice_before: float | None = None
        self._sums: dict[str, float] = {}
        self.add_event_handler(Events.EPOCH_STARTED, self._start)
        self.add_event_handler(Events.EPOCH_COMPLETED, self._finish)
        for handler in handlers or []:
            handler.attach(self)

    def _start(self, _engine: Engine) -> None:
        self._sums = {}
        self._was_training = unwrap(self.network).training
        unwrap(self.network).eval()

    @torch.no_grad()
    def _step(self, _engine: Engine, pair: dict) -> dict[str, float]:
        scores = _score_pair(unwrap(self.network), pair, self.lams, self.device, self.active_levels,
                             before=self.dice_before is None, inferer=self.inferer)
        for key, value in scores.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        return scores

    def _finish(self, _engine: Engine) -> None:
        unwrap(self.network).train(self._was_training)
        means = {k: v / max(len(self.pairs), 1) for k, v in self._sums.items()}
        self.dice_before = means.setdefault("dice_before", self.dice_before)
        self.state.metrics = means

    def run(self, active_levels: int | None = None) -> dict[str, float]:  # type: ignore[override]
        """Score every pair with the coarsest ``active_levels`` levels (``None``: all); returns ``state.metrics``."""
        if not self.pairs:
            return {}
        self.active_levels = active_levels
        super().run(self.pairs, max_epochs=1)
        return dict(self.state.metrics)


class LevelValidation:
    """Run ``validator`` every ``interval`` training iterations and at the last, at the trainer's current level.

    Attach before the handlers that read the scores (``metrics.jsonl``, TensorBoard: same iteration). Runs on
    rank 0 only. The scores go to the trainer engine's ``state.metrics`` as ``val_<name>`` with
    ``state.metrics_iteration`` set to the iteration, and to the log.

    Args:
        validator: a :class:`LevelValidator` (``validate#evaluator``).
        interval: training iterations between validations (global iteration ``k``, so a resumed run keeps them).
    """

    def __init__(self, validator: LevelValidator, interval: int = 1000) -> None:
        self.validator, self.interval = validator, max(1, int(interval))

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        record = engine.state.output[0]
        k = record["iteration"]
        if not (k % self.interval == 0 or k == record.get("total")) or not is_main_process():
            return
        scores = self.validator.run(active_levels=record["level"])
        if not scores:
            return
        logger.info("validation at %d: %s", k, ", ".join(f"{n} {v:.4f}" for n, v in scores.items()))
        engine.state.metrics = {f"val_{n}": v for n, v in scores.items()}  # MONAI's place for metrics
        engine.state.metrics_iteration = k
