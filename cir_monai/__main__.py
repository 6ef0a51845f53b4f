# Copyright (c) 2026 cir-monai contributors. MIT licence (see LICENSE).
"""``python -m cir_monai``: the ``cir-monai`` command."""

import sys

from cir_monai.cli import main

if __name__ == "__main__":
    sys.exit(main())
