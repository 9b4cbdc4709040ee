"""Accuracy evaluation: train a candidate briefly and measure validation top-1.

The recipe is standard and deterministic on the CPU under a seed: shuffled
mini-batches drawn with ``np.random.default_rng(seed)``, SGD with Nesterov
momentum (or AdamW), a cosine learning-rate schedule, optional label smoothing,
inputs normalised with the training split's statistics.  Training can start
from given weights (weight inheritance).  A candidate whose loss turns NaN, or
whose training raises, comes back as ``status="failed"`` with the reason, so
the search can go on.

Weights are stored with safetensors (no pickle).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["TrainConfig", "TrainResult", "evaluate_accuracy", "load_weights", "save_weights", "train_candidate"]


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe of one candidate."""

    epochs: int = 15
    batch_size: int = 64
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum 0.9) or "adamw"
    lr: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    threads: int = 1

    def __post_init__(self) -> None:
        from edgenas.errors import SearchError

        if self.optimizer not in ("sgd", "adamw"):
            raise SearchError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        if self.epochs < 0 or self.batch_size < 1 or not self.lr > 0 or not 0 <= self.label_smoothing < 1:
            raise SearchError("training needs epochs >= 0, batch size >= 1, lr > 0 and 0 <= label smoothing < 1")


@dataclass(frozen=True)
class TrainResult:
    status: str  # "ok" or "failed"
    accuracy: float | None  # validation top-1 in [0, 1]
    train_seconds: float
    epochs: int
    reason: str = ""
    state: dict[str, torch.Tensor] | None = field(default=None, repr=False)


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = model(torch.from_numpy(x[start : start + batch_size]))
        correct += int((logits.argmax(1).numpy() == y[start : start + batch_size]).sum())
    return correct / max(len(y), 1)


def train_candidate(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    seed: int,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``model`` on normalised ``train`` arrays and report top-1 on ``val``."""
    start = time.perf_counter()
    epoch = 0
    try:
        torch.manual_seed(seed)
        torch.set_num_threads(config.threads)
        if init_state is not None:
            model.load_state_dict(init_state)
        x, y = train
        rng = np.random.default_rng(seed)
        steps_per_epoch = max(1, math.ceil(len(y) / config.batch_size))
        total = max(1, steps_per_epoch * config.epochs)
        if config.optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                                  weight_decay=config.weight_decay)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
        loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = torch.from_numpy(rng.permutation(len(y)))
            for i in range(steps_per_epoch):
                batch = order[i * config.batch_size : (i + 1) * config.batch_size]
                if len(batch) < 2:  # BatchNorm needs two samples
                    continue
                loss = loss_fn(model(xt[batch]), yt[batch])
                if not torch.isfinite(loss):
                    return TrainResult("failed", None, time.perf_counter() - start, epoch,
                                       f"loss became {loss.item()} in epoch {epoch}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
        accuracy = evaluate_accuracy(model, *val)
    except Exception as exc:  # a candidate that cannot train is recorded, not fatal
        return TrainResult("failed", None, time.perf_counter() - start, epoch, f"{type(exc).__name__}: {exc}")
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return TrainResult("ok", accuracy, time.perf_counter() - start, config.epochs, state=state)


def save_weights(state: dict[str, torch.Tensor], path: str | Path) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(path)
    return path


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))
