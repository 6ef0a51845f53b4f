# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""Engines: the λ-sampling progressive trainer, registration of files, evaluation, checkpoints and the schedule."""

from cir_monai.engines.checkpoint import load_checkpoint, save_checkpoint
from cir_monai.engines.evaluation import RegistrationEvaluator
from cir_monai.engines.inference import RegistrationRunner, load_network
from cir_monai.engines.schedule import LevelSchedule, sample_lambda
from cir_monai.engines.trainer import CLapIRNTrainer, validate

__all__ = [
    "CLapIRNTrainer",
    "LevelSchedule",
    "RegistrationEvaluator",
    "RegistrationRunner",
    "load_checkpoint",
    "load_network",
    "sample_lambda",
    "save_checkpoint",
    "validate",
]
