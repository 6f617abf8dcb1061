"""The digits classifier: a small CNN sized from the data, so any [N, C, H, W] images fit."""

from __future__ import annotations

from torch import Tensor, nn


class ImageClassifier(nn.Module):
    """Two 3x3 conv blocks, a 2x pool and an MLP head; takes [N, C, H, W] in 0..1, returns logits.

    No batch norm or dropout: the forward pass of a sample does not depend on the rest of its
    batch or on RNG state, so N-process DDP trains the same model as one process with the same
    global batch, and a resumed run matches an uninterrupted one bit for bit on the CPU.
    The head is mostly ``nn.Linear``, which is what int8 dynamic quantisation shrinks.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, hidden: int = 128):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            # A fixed 4x4 grid whatever the input size, so the head's shape depends on width only.
            nn.AdaptiveAvgPool2d(4),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * 16, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
