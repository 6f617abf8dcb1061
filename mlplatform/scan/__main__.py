"""`python -m mlplatform.scan [STACK ...]`: checkov over the stacks' offline plans."""

import sys

from mlplatform.scan.checkov import main

sys.exit(main())
