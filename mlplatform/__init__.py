"""The `mlplatform` tool: everything that runs beside the Pulumi program in `infra/`.

The offline plan and its mocks, policy report, cost estimate, operating commands, local runs and
scaffolding. It imports `infra`; `infra` never imports it (tests/test_project.py checks).
"""
