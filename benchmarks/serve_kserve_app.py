"""The same model behind KServe's Python model server (kserve.Model, Open Inference Protocol v2).

Serves `POST /v2/models/digits/infer` with the body our /v2 route takes, so the load is the same
for both. Started as KServe's docs show, one worker, with gRPC and per-request latency logging
off (flags KServe documents): it binds 0.0.0.0 whatever it is told, and opens a gRPC port unless
`--enable_grpc false`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    # kserve.model_server parses sys.argv when it is imported: hand it only its own flags.
    sys.argv = [sys.argv[0], "--http_port", str(args.port), "--enable_grpc", "false"]
    sys.argv += ["--workers", "1", "--enable_latency_logging", "false"]

    import kserve
    import torch
    from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

    class TorchScriptModel(kserve.Model):
        """Loads model.pt like our server; one forward pass per request (KServe has no batcher
        in the Python server)."""

        def __init__(self, name: str) -> None:
            super().__init__(name)
            self.load()

        def load(self) -> bool:
            torch.set_num_threads(args.threads)
            self.model = torch.jit.load(str(args.model_dir / "model.pt"))
            self.model.eval()
            self.ready = True
            return self.ready

        def predict(
            self, payload: InferRequest, headers: dict | None = None, response_headers=None
        ) -> InferResponse:
            x = torch.from_numpy(payload.inputs[0].as_numpy())
            with torch.inference_mode():
                y = self.model(x).numpy()
            output = InferOutput(name="logits", shape=list(y.shape), datatype="FP32", data=y)
            return InferResponse(
                response_id=payload.id, model_name=self.name, infer_outputs=[output]
            )

    kserve.ModelServer().start([TorchScriptModel("digits")])


if __name__ == "__main__":
    main()
