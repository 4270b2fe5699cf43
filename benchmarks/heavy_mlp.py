"""A workload whose model dominates: tabular_torch's data and transforms, a much deeper MLP.

The examples' models cost well under a microsecond a row, so engine overhead decides every ratio
against the ceiling. Here the model does about 0.8 million multiply-adds a row (four 512-wide
layers), tens of microseconds on one CPU: what a production scorer costs, so that the benchmark
shows how close each executor comes to the machine's limit when the model is the work. Its
weights are seeded, not trained (the benchmark scores speed, and the ceiling checks the answers).
Used by ``make bench`` until the model-kinds issue's XGBoost and transformer examples land.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict  # noqa: UP035 (TorchScript reads the annotation)

import torch
from torch import nn

NAME = "heavy_mlp"
WIDTH, DEPTH = 512, 4
JOB_TOML = """\
# Benchmark-only workload (benchmarks/heavy_mlp.py): tabular_torch's data and transforms, a deep MLP.
[job]
key = "id"
name = "heavy_mlp"

[input]
path = "data/input.parquet"

[output]
path = "out/predictions"
passthrough = ["id"]
overwrite = true

[model]
bundle = "model"

[spark]
master = "local[*]"
"""


class DeepMLP(nn.Module):
    """``DEPTH`` hidden layers of ``WIDTH``; outputs a score and a label like tabular_torch's model."""

    def __init__(self, inputs: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(inputs, WIDTH), nn.ReLU()]
        for _ in range(DEPTH - 1):
            layers += [nn.Linear(WIDTH, WIDTH), nn.ReLU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(WIDTH, 1))

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:  # noqa: UP006
        score = torch.sigmoid(self.mlp(x).squeeze(1).double())
        return {"score": score, "label": (score > 0.5).long()}


def build(size: int | None = None, seed: int = 0, out_dir: Path | str = ".") -> dict:
    """tabular_torch's build (data, transforms, bundle), then its model swapped for the deep MLP."""
    from examples.tabular_torch import build as tabular

    out_dir = Path(out_dir)
    metrics = tabular.build(size, seed, out_dir)
    torch.manual_seed(seed)
    model = DeepMLP(len(tabular.FEATURES)).eval()
    torch.jit.script(model).save(str(out_dir / "model" / "model.pt"))
    bundle = out_dir / "model" / "bundle.toml"
    text = bundle.read_text().replace('name = "tabular_torch"', f'name = "{NAME}"')
    bundle.write_text(text.replace("batch_size = 4096", "batch_size = 1024"))
    (out_dir / "job.toml").write_text(JOB_TOML)
    return {**metrics, "model": f"MLP {DEPTH}x{WIDTH}", "holdout_accuracy": None}
