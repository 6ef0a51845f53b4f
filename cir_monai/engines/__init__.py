# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Engines: the λ-sampling progressive trainer, registration of files, evaluation and the schedule
(model files and checkpoints: :mod:`cir_monai.io`)."""

from cir_monai.engines.evaluation import RegistrationEvaluator
from cir_monai.engines.inference import RegistrationRunner
from cir_monai.engines.schedule import LevelSchedule, sample_lambda
from cir_monai.engines.trainer import CLapIRNTrainer
from cir_monai.engines.validation import validate

__all__ = [
    "CLapIRNTrainer",
    "LevelSchedule",
    "RegistrationEvaluator",
    "RegistrationRunner",
    "sample_lambda",
    "validate",
]
