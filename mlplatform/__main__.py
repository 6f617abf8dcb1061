"""`python -m mlplatform`: the same as the `mlplatform` console script."""

import sys

from mlplatform.cli import main

sys.exit(main())
