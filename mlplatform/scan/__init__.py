"""A second opinion on the offline plan: render it for checkov, run checkov, explain its findings.

Our policy rules (`policies/`) are the gate; checkov is an independent scanner whose findings
must each be fixed or written down with a reason in `scanners/suppressions.yaml`.
"""
