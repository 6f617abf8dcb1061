"""The model server: SageMaker and Open Inference Protocol v2 over one ASGI app (README.md)."""
