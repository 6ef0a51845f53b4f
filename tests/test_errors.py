"""One-line user errors: the innermost message of a wrapped chain."""

from __future__ import annotations

from cir_monai.errors import user_message


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


def test_a_user_error_raised_from_another_wins():
    try:
        try:
            raise FileExistsError(17, "File exists")
        except FileExistsError as err:
            raise OSError("cannot write to output folder /x: File exists") from err
    except OSError as outer:
        assert user_message(outer) == "cannot write to output folder /x: File exists"
