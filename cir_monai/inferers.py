# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""The conditional inferer: MONAI's ``Inferer`` for a network that also takes λ (the atlas workflow's ``inferer``).

MONAI's inferers pass only the image; cLapIRN also takes the smoothness weight λ. :class:`ConditionalInferer`
calls the network through :func:`cir_monai.engines.prediction.predict_field` on the stacked ``(moving, fixed)``
input with the configured λ (or the one a request brings), refined per image when asked.

A λ outside the model's range is refused with :class:`InvalidRequestError`, a ``ValueError`` that a web server
built on Starlette (MONAI Label's FastAPI) answers with HTTP 422 and the message, not with a server error.
"""

from __future__ import annotations

import torch
from monai.inferers import Inferer

from cir_monai.engines.prediction import predict_field
from cir_monai.networks.clapirn import check_lams
from cir_monai.refine import refine_steps

__all__ = ["ConditionalInferer", "InvalidRequestError"]


def _http_exception_base() -> tuple[type[Exception], ...]:
    """Starlette's ``HTTPException`` where it is installed (the web framework under MONAI Label's FastAPI), else
    nothing."""
    try:
        from starlette.exceptions import HTTPException
    except ImportError:
        return ()
    return (HTTPException,)


class InvalidRequestError(ValueError, *_http_exception_base()):
    """A value given with a request is invalid (a λ outside the model's range): the client's error, not the server's.

    A ``ValueError`` with the message, so the bundle's command line reports it in one line. Where
    Starlette is installed it is also Starlette's ``HTTPException`` with ``status_code`` 422 and
    ``detail`` the message: MONAI Label (FastAPI) has no handler of its own for errors raised while
    a task runs and answers any other exception with HTTP 500 and a server traceback, but it answers
    this one with ``422 {"detail": message}``. ``str()`` is the plain message.
    """

    status_code = 422

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        self.detail, self.headers = message, None

    def __str__(self) -> str:
        return self.detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r})"


def _model_lam_max(network) -> float | None:
    """The network's λ range ``[0, lam_max]``: the eager cLapIRN's ``lam_max``, or the exported module's (model.ts).

    None where the network does not say (then it checks λ itself) or ignores λ (the fixed-λ baseline).
    Wrappers are looked through: MONAI Deploy's ``Model`` (the loaded module is its ``predictor``; the SDK
    passes the wrapper for a TorchScript file) and ``DataParallel`` / ``DistributedDataParallel`` (``module``).
    """
    for attribute in ("predictor", "module"):
        inner = getattr(network, attribute, None)
        if isinstance(inner, torch.nn.Module):
            network = inner
    if getattr(network, "conditioning", None) == "none":
        return None
    lam_max = getattr(network, "lam_max", None)
    return float(lam_max) if isinstance(lam_max, (int, float)) and not isinstance(lam_max, bool) else None


class ConditionalInferer(Inferer):
    """Call a conditional network as ``network(inputs, lam)`` with a fixed λ (one value per sample).

    MONAI's inferers pass only the image; cLapIRN also takes λ. Works with the eager
    :class:`~cir_monai.networks.StackedCLapIRN` and with the exported TorchScript
    (:mod:`cir_monai.io.export`), whose inputs are ``(image, lam)``.

    λ is checked against the network's range when it is called, before any work: λ comes with the
    request (MONAI Label's ``displayable_configs``, MONAI Deploy's ``lam`` input), and an error from
    the call reaches the caller as raised, whereas one from the constructor would be wrapped by MONAI's
    config parser into a ``RuntimeError``.

    With ``refine > 0`` the network's field is refined for the image at hand by that many steps of the network's own
    objective at the same λ (:func:`cir_monai.refine.refine_ddf`), on the stacked input's grid (the frame).

    Args:
        lam: the smoothness weight λ (within the model's range, [0, 10] for the shipped model).
        refine: per-image refinement steps (0: the network's field as it is).
        num_levels: the network's pyramid levels, for the refinement's similarity pyramid (read from an eager
            network; a TorchScript module does not carry it).
        stacked: the network takes the stacked ``(moving, fixed)`` input (:class:`~cir_monai.networks.StackedCLapIRN`,
            the exported model); ``False``: a plain :class:`~cir_monai.networks.CLapIRN`, ``network(moving, fixed,
            lam)``, as training validates it (``train#inferer``, used by ``validate#evaluator``), which may also
            predict with the coarsest ``active_levels`` levels only.

    Raises:
        InvalidRequestError: (when called, like λ: both may come with a request) λ is not a number, not finite, or
            outside ``[0, network.lam_max]``; ``refine`` is not a whole number >= 0.
    """

    def __init__(self, lam: float = 1.0, refine: int = 0, num_levels: int = 3, stacked: bool = True) -> None:
        super().__init__()
        self.lam = lam
        self.refine = refine
        self.num_levels = int(num_levels)
        self.stacked = bool(stacked)

    def _steps(self) -> int:
        try:
            return refine_steps(self.refine)
        except ValueError as err:
            raise InvalidRequestError(str(err)) from None

    def __call__(self, inputs: torch.Tensor, network, *args, lam=None, active_levels: int | None = None,
                 progress: str | None = None, **kwargs) -> torch.Tensor:
        """``lam``: a λ given with the call (MONAI Deploy passes the bundle's ``lam`` input as a keyword) wins.
        ``active_levels``: the coarsest levels to predict with (a plain network's validation during progressive
        training; ``None``: all). ``progress``: a description for the refinement's progress bar (the runner's).

        Raises:
            TypeError: other arguments for the network (it takes the stacked image and λ only).
        """
        if args or kwargs:
            raise TypeError(f"ConditionalInferer gives the network the image and λ only; got other arguments "
                            f"{list(args) + sorted(kwargs)}")
        value = self.lam if lam is None else lam
        lam_max = _model_lam_max(network)
        try:  # a number, a sequence or tensor of numbers, or a number's text (a request's parameter)
            lam_t = torch.as_tensor(float(value) if isinstance(value, str) else value, dtype=torch.float32,
                                    device=inputs.device).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            bounds = f" in [0, {lam_max:g}]" if lam_max is not None else ""
            raise InvalidRequestError(f"lam must be a number{bounds}, got {value!r}") from None
        if lam_max is not None:
            try:
                check_lams(lam_t.detach().cpu().tolist(), lam_max)
            except ValueError as err:
                raise InvalidRequestError(str(err)) from None
        if lam_t.numel() == 1:
            lam_t = lam_t.expand(inputs.shape[0])
        if active_levels is not None and self.stacked:
            raise TypeError("active_levels needs a plain network (ConditionalInferer(stacked=False))")
        return predict_field(network, inputs[:, :1], inputs[:, 1:], lam_t, refine=self._steps(), stacked=self.stacked,
                             active_levels=active_levels, progress=progress,
                             num_levels=int(getattr(network, "num_levels", self.num_levels)))
