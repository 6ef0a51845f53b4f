"""One-line user errors: the innermost message of a wrapped chain, and the bundle override check."""

from __future__ import annotations

from pathlib import Path

import pytest

from cir_monai.errors import check_bundle_overrides, user_message

CONFIGS = Path(__file__).resolve().parents[1] / "bundle" / "configs"


def _wrapped(inner: BaseException) -> RuntimeError:
    """``inner`` wrapped twice, the way MONAI's ConfigItem re-raises."""
    try:
        try:
            raise inner
        except BaseException as err:
            raise RuntimeError("Failed to evaluate ConfigExpression") from err
    except RuntimeError as err:
        try:
            raise RuntimeError("Failed to instantiate component") from err
        except RuntimeError as outer:
            return outer


def test_innermost_user_error_is_reported():
    assert user_message(_wrapped(FileNotFoundError("model file not found: x.pt"))) == "model file not found: x.pt"
    assert user_message(_wrapped(KeyError("the referring item `@netwrk` is not defined"))) == (
        "the referring item `@netwrk` is not defined")
    assert user_message(_wrapped(ValueError("lam values must lie in [0, 10], got [11.0]"))).endswith("[11.0]")


def test_bugs_keep_their_traceback():
    assert user_message(_wrapped(ZeroDivisionError("division by zero"))) is None
    assert user_message(RuntimeError("CUDA error")) is None


def test_override_typo_is_named_with_a_suggestion():
    args = ["run", "register", "--config_file", str(CONFIGS / "register.yaml"), "--lmas", "[4]"]
    with pytest.raises(KeyError, match=r"unknown option --lmas: .*did you mean --lams\?"):
        check_bundle_overrides(args)


def test_known_overrides_pass():
    files = f"['{CONFIGS / 'train.yaml'}','{CONFIGS / 'evaluate.yaml'}']"
    check_bundle_overrides(["run", "evaluate", "--config_file", files, "--meta_file", "m.json",
                            "--eval_lams", "[1]", "--train#trainer#iterations=[1,1,1]", "--ckpt_path", "x.pt",
                            "--train::trainer::lr", "0.1"])  # MONAI's '::' separator too
    check_bundle_overrides(["run", "--args_file", "a.yaml", "--anything", "1"])  # args files are not checked


def test_a_user_error_raised_from_another_wins():
    try:
        try:
            raise FileExistsError(17, "File exists")
        except FileExistsError as err:
            raise OSError("cannot write to output folder /x: File exists") from err
    except OSError as outer:
        assert user_message(outer) == "cannot write to output folder /x: File exists"
