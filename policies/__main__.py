"""Entry point the Pulumi engine runs for `--policy-pack policies`: builds the pack and serves it.

`PolicyPack(...)` starts the analyzer server and never returns, so nothing imports this file;
the rules live in `policies.rules` and are tested there.
"""

import sys
from pathlib import Path

# The engine runs this directory as a script; the rules import `policies.*` and `infra.*` from
# the repository root, the same modules the offline check and the tests use.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies.pack import PACK_NAME, policies

PolicyPack(name=PACK_NAME, policies=policies(), enforcement_level=EnforcementLevel.ADVISORY)
