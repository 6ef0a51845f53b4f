"""The conditional inferer (the atlas workflow's ``inferer``): λ per request, refinement, errors a client gets."""

from __future__ import annotations

import pytest
import torch

from cir_monai.engines.prediction import predict_field
from cir_monai.inferers import ConditionalInferer, InvalidRequestError
from cir_monai.networks import StackedCLapIRN


def test_conditional_inferer_passes_lambda():
    seen = {}

    def network(image, lam):
        seen["lam"] = lam
        return image[:, :1]

    ConditionalInferer(lam=4.0)(torch.zeros(2, 2, 4, 4, 4), network)
    assert seen["lam"].tolist() == [4.0, 4.0]


def test_conditional_inferer_refuses_request_values_as_the_clients_error():
    """λ outside the model's range and a bad refine are InvalidRequestError (HTTP 422 in MONAI Label, one line on the
    command line), raised when called: both may come with a request."""

    net = StackedCLapIRN(3, start_channels=2, num_levels=1).eval()
    image = torch.rand(1, 2, 8, 8, 8)
    with pytest.raises(InvalidRequestError, match=r"\[0, 10\].*12"):
        ConditionalInferer(lam=12.0)(image, net)
    for bad in (-1, 2.5, "many"):
        with pytest.raises(InvalidRequestError, match="refine must be a whole number"):
            ConditionalInferer(refine=bad)(image, net)
    err = InvalidRequestError("lam must lie in [0, 10]")
    assert isinstance(err, ValueError) and str(err) == "lam must lie in [0, 10]"
    if hasattr(err, "status_code"):  # where Starlette is installed
        assert err.status_code == 422


def test_conditional_inferer_refines():
    """refine N changes the network's field by N steps of its objective (0: the field as the network gives it)."""
    torch.manual_seed(0)
    net = StackedCLapIRN(3, start_channels=2).eval()
    image = torch.rand(1, 2, 24, 24, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = ConditionalInferer(lam=1.0)(image, net)
        refined = ConditionalInferer(lam=1.0, refine=3)(image, net)
    assert plain.shape == refined.shape and (refined - plain).abs().max() > 1e-4


def test_conditional_inferer_is_predict_field_on_the_stacked_input():
    """The inferer runs the network the one way (predict_field), refinement included, and refuses extra arguments."""
    torch.manual_seed(0)
    net = StackedCLapIRN(3, start_channels=2).eval()
    image = torch.rand(1, 2, 24, 24, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = ConditionalInferer(lam=2.0, refine=2)(image, net)
        want = predict_field(net, image[:, :1], image[:, 1:], torch.tensor([2.0]), refine=2, stacked=True)
    assert torch.equal(got, want)
    with pytest.raises(TypeError, match="image and λ only"):
        ConditionalInferer()(image, net, "extra")
