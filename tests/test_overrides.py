"""Override checking for bundle command lines: typos are errors with a suggestion, known ids pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from cir_monai.overrides import check_bundle_overrides, check_reserved

CONFIGS = Path(__file__).resolve().parents[1] / "bundle" / "configs"


def test_override_typo_is_named_with_a_suggestion():
    args = ["run", "register", "--config_file", str(CONFIGS / "register.yaml"), "--lmas", "[4]"]
    with pytest.raises(KeyError, match=r"unknown option --lmas: .*did you mean --lams\?"):
        check_bundle_overrides(args)


def test_known_overrides_pass():
    files = f"['{CONFIGS / 'train.yaml'}','{CONFIGS / 'evaluate.yaml'}']"
    check_bundle_overrides(["run", "evaluate", "--config_file", files, "--meta_file", "m.json",
                            "--eval_lams", "[1]", "--train#trainer#iterations=[1,1,1]", "--ckpt_path", "x.pt",
                            "--optimizer::lr", "0.1"])  # MONAI's '::' separator too
    check_bundle_overrides(["run", "--args_file", "a.yaml", "--anything", "1"])  # args files are not checked


def test_ids_a_command_sets_are_refused_with_the_option_to_use():
    check_reserved(["dataset_dir"], {"ckpt_path": "model"})
    with pytest.raises(ValueError, match=r"use --model instead of --ckpt_path \(the command sets ckpt_path"):
        check_reserved(["dataset_dir", "ckpt_path"], {"ckpt_path": "model"})
