"""Stand-in for ``torchvision`` in the MONAI Label integration venv (see ../pyproject.toml).

Only ``torchvision.utils.make_grid`` and ``torchvision.utils.save_image`` exist; anything else
raises ImportError/AttributeError like a missing torchvision would.  The version is below every
real release so MONAI's ``optional_import("torchvision", "x.y")`` version checks report it missing.
"""

__version__ = "0.0.0+stub"

from . import utils  # noqa: E402,F401
