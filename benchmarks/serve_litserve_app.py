"""The same model behind LitServe, the server users would pick instead of ours.

Speaks the same JSON as our /invocations (`{"inputs": [sample, ...]}` in, `{"predictions":
[{"logits": [...], "label": "3"}]}` out) on LitServe's /predict, so the load is identical.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import litserve as ls
import numpy as np
import torch


class TorchScriptAPI(ls.LitAPI):
    """Loads model.pt and model.json like our server; batches by concatenating samples."""

    def __init__(self, model_dir: Path, threads: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.model_dir = model_dir
        self.threads = threads

    def setup(self, device: str) -> None:
        torch.set_num_threads(self.threads)
        self.model = torch.jit.load(str(self.model_dir / "model.pt"), map_location=device)
        self.model.eval()
        self.labels = json.loads((self.model_dir / "model.json").read_text())["labels"]

    def decode_request(self, request: dict) -> torch.Tensor:
        return torch.from_numpy(np.asarray(request["inputs"], dtype=np.float32))

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(inputs)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(x)

    def unbatch(self, output: torch.Tensor) -> list[torch.Tensor]:
        return [row[None] for row in output]  # one sample per request in the benchmark

    def encode_response(self, output: torch.Tensor) -> dict:
        rows = output.tolist()
        best = output.argmax(dim=1).tolist()
        return {
            "predictions": [
                {"logits": row, "label": self.labels[i]} for row, i in zip(rows, best, strict=True)
            ]
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-batch-size", type=int, default=1)
    p.add_argument("--batch-timeout", type=float, default=0.0)
    p.add_argument("--fast-queue", action="store_true")
    args = p.parse_args()
    api = TorchScriptAPI(
        args.model_dir,
        args.threads,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
    )
    server = ls.LitServer(api, accelerator="cpu", devices=1, fast_queue=args.fast_queue)
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
