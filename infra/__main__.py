"""Pulumi entry point (Pulumi.yaml `main: infra/`): validate the stack's config, then build it."""

import pulumi

from infra.config import StackConfigError
from infra.program import main

try:
    main()
except StackConfigError as error:
    # RunError prints the message without a Python traceback.
    raise pulumi.RunError(str(error)) from None
