"""Accuracy evaluation: train a candidate briefly and measure validation top-1.

The recipe is standard and deterministic on the CPU under a seed: shuffled
mini-batches drawn with ``np.random.default_rng(seed)``, SGD with Nesterov
momentum (or AdamW), a cosine learning-rate schedule, optional label smoothing,
inputs normalised with the training split's statistics.  Training can start
from given weights (weight inheritance).  A candidate whose loss turns NaN, or
whose training raises, comes back as ``status="failed"`` with the reason, so
the search can go on.

Two rules keep short training honest on data of any size:

- :func:`training_budget` gives every candidate trained from scratch at least
  ``min_steps`` optimizer steps (raising the epochs where the data is small) and
  uses smaller batches for tiny datasets; a fine-tune from inherited weights
  gets the same minimum in proportion to its epochs.  A few hundred images at
  batch 64 and 6 epochs are 24 steps: too few for any network to leave chance.
- ``augment="light"``: a random crop from the image padded by 1/8 of its side
  (reflected) where the image is at least 16 pixels wide (at 8x8 a one-pixel
  shift is an eighth of the object: measured on digits, it cost 2-15 points at
  6-9 epochs), and, where ``flip`` is set, a random horizontal mirror.  The
  search sets ``flip`` for RGB data (photos) and never for greyscale data
  (digits, characters), where a mirror can change the class.  Validation
  images are never augmented.  It is off by default: at a search's short
  training (200 steps) it cost 5-11 points on 8 classes of photos at 32x32
  (0.82/0.88 against 0.93/0.90 without), as it slows convergence.

:func:`at_chance` tells whether a validation accuracy is indistinguishable
from always answering the majority class.

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

__all__ = [
    "AUGMENTATIONS", "TRAIN_DEVICES", "TrainConfig", "TrainResult", "TrainingBudget", "at_chance", "evaluate_accuracy",
    "load_weights", "save_weights", "train_candidate", "training_budget", "training_device", "weights_from_bytes",
    "weights_to_bytes",
]

AUGMENTATIONS = ("none", "light")
#: Where a candidate trains: ``auto`` is CUDA where torch sees a GPU, else the CPU.
TRAIN_DEVICES = ("auto", "cpu", "cuda")
#: Light augmentation crops only images at least this wide.
MIN_CROP_SIDE = 16


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
    augment: str = "none"  # "none" or "light" (random crop, plus a horizontal flip where ``flip``)
    flip: bool = False
    device: str = "cpu"  # "cpu", "cuda" or "auto" (CUDA where torch sees a GPU): see :func:`training_device`

    def __post_init__(self) -> None:
        from edgenas.errors import SearchError

        if self.optimizer not in ("sgd", "adamw"):
            raise SearchError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        if self.augment not in AUGMENTATIONS:
            raise SearchError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        if self.device not in TRAIN_DEVICES:
            raise SearchError(f"train device must be one of {', '.join(TRAIN_DEVICES)}, got {self.device!r}")
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
    steps: int = 0
    device: str = "cpu"  # where it trained ("cpu" or "cuda")


@dataclass(frozen=True)
class TrainingBudget:
    """The resolved training budget of a search: batch size, and epochs/steps from scratch and for fine-tunes."""

    train_images: int
    batch_size: int
    min_steps: int
    epochs: int  # from scratch, after the minimum-steps rule
    finetune_epochs: int  # a fine-tune of the run's --finetune-epochs, after the proportional minimum
    requested_epochs: int
    requested_finetune_epochs: int

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.train_images, self.batch_size)

    def steps(self, epochs: int) -> int:
        return epochs * self.steps_per_epoch

    def finetune(self, epochs: int) -> int:
        """Epochs of a fine-tune asked for ``epochs``: the same proportional minimum of steps."""
        share = min(1.0, epochs / max(self.requested_epochs, 1))  # never more than a from-scratch candidate's minimum
        floor = math.ceil(self.min_steps * share / self.steps_per_epoch)
        return max(epochs, floor)

    def to_dict(self) -> dict:
        return {"train_images": self.train_images, "batch_size": self.batch_size, "min_steps": self.min_steps,
                "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs, "steps": self.steps(self.epochs),
                "finetune_epochs": self.finetune_epochs, "finetune_steps": self.steps(self.finetune_epochs),
                "requested_epochs": self.requested_epochs, "requested_finetune_epochs": self.requested_finetune_epochs}


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one epoch (a last batch of one image is skipped: BatchNorm needs two)."""
    full, rest = divmod(n_train, batch_size)
    return max(1, full + (rest >= 2))


def training_budget(n_train: int, epochs: int, finetune_epochs: int, min_steps: int, batch_size: int = 64) -> TrainingBudget:
    """The budget for ``n_train`` training images (see the module docstring).

    The batch is ``batch_size``, halved while it exceeds an eighth of the
    training images, but never below 16 (BatchNorm needs a few samples); the
    epochs are raised until a from-scratch candidate takes ``min_steps`` steps.
    ``epochs`` stays a floor the user sets.
    """
    batch = batch_size
    while batch > 16 and batch > n_train / 8:
        batch //= 2
    spe = steps_per_epoch(n_train, batch)
    scratch = max(epochs, math.ceil(min_steps / spe))
    budget = TrainingBudget(n_train, batch, min_steps, scratch, finetune_epochs, epochs, finetune_epochs)
    return TrainingBudget(n_train, batch, min_steps, scratch, budget.finetune(finetune_epochs), epochs, finetune_epochs)


def at_chance(accuracy: float | None, majority_rate: float, n_val: int, z: float = 2.0) -> bool:
    """Whether ``accuracy`` on ``n_val`` validation images is within a binomial margin of the majority-class rate.

    The margin is ``z`` standard errors of a binomial proportion at the
    majority rate (z = 2: about 98% one-sided): a network that learned nothing
    scores at or below it.
    """
    if accuracy is None or n_val < 1:
        return False
    p = min(max(majority_rate, 1e-9), 1 - 1e-9)
    return accuracy <= p + z * math.sqrt(p * (1 - p) / n_val)


def _augment(xb: torch.Tensor, rng: np.random.Generator, flip: bool) -> torch.Tensor:
    """Light augmentation of a batch: a random crop of the reflect-padded images (16 px and up), and a random mirror
    if ``flip``."""
    import torch.nn.functional as F

    n, c, h, w = xb.shape
    out = xb
    if min(h, w) >= MIN_CROP_SIDE:
        pad = min(h, w) // 8
        padded = F.pad(xb, (pad, pad, pad, pad), mode="reflect")
        dev = xb.device
        dy = torch.from_numpy(rng.integers(0, 2 * pad + 1, n)).to(dev)
        dx = torch.from_numpy(rng.integers(0, 2 * pad + 1, n)).to(dev)
        rows = (dy[:, None] + torch.arange(h, device=dev)[None])[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=dev)[None])[:, None, None, :]
        out = padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                     rows, cols]
    if flip:
        mirror = torch.from_numpy(rng.random(n) < 0.5).to(xb.device)
        out = torch.where(mirror[:, None, None, None], out.flip(3), out)
    return out


def training_device(choice: str) -> str:
    """The torch device a candidate trains on: ``cuda`` where asked for (or ``auto``) and torch sees a GPU, else
    ``cpu``.  Asking for ``cuda`` where there is none raises :class:`~edgenas.errors.SearchError`."""
    from edgenas.errors import SearchError

    if choice == "cpu":
        return "cpu"
    available = torch.cuda.is_available()
    if choice == "cuda" and not available:
        raise SearchError("--train-device cuda, but torch sees no CUDA GPU here (this torch build: "
                          f"{torch.__version__}); use --train-device auto or cpu")
    return "cuda" if available else "cpu"


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    device = next(model.parameters()).device
    for start in range(0, len(y), batch_size):
        logits = model(torch.from_numpy(x[start : start + batch_size]).to(device))
        correct += int((logits.argmax(1).cpu().numpy() == y[start : start + batch_size]).sum())
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
    device = "cpu"
    try:
        device = training_device(config.device)
        torch.manual_seed(seed)
        torch.set_num_threads(config.threads)
        if init_state is not None:
            model.load_state_dict(init_state)
        model.to(device, memory_format=torch.channels_last)  # about 2x faster depthwise convolutions on the CPU
        x, y = train
        rng = np.random.default_rng(seed)
        aug_rng = np.random.default_rng([seed, 1])
        per_epoch = steps_per_epoch(len(y), config.batch_size)
        total = max(1, per_epoch * config.epochs)
        if config.optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                                  weight_decay=config.weight_decay)
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
        loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        for epoch in range(1, config.epochs + 1):
            model.train()
            order = torch.from_numpy(rng.permutation(len(y))).to(device)
            for i in range(per_epoch):
                batch = order[i * config.batch_size : (i + 1) * config.batch_size]
                if len(batch) < 2:  # BatchNorm needs two samples
                    continue
                xb = xt[batch] if config.augment == "none" else _augment(xt[batch], aug_rng, config.flip)
                loss = loss_fn(model(xb.contiguous(memory_format=torch.channels_last)), yt[batch])
                if not torch.isfinite(loss):
                    return TrainResult("failed", None, time.perf_counter() - start, epoch,
                                       f"loss became {loss.item()} in epoch {epoch}", device=device)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
        model.to(memory_format=torch.contiguous_format)
        accuracy = evaluate_accuracy(model, *val)
    except Exception as exc:  # a candidate that cannot train is recorded, not fatal
        return TrainResult("failed", None, time.perf_counter() - start, epoch, f"{type(exc).__name__}: {exc}",
                           device=device)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model.to("cpu")
    return TrainResult("ok", accuracy, time.perf_counter() - start, config.epochs, state=state,
                       steps=per_epoch * config.epochs, device=device)


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


def weights_to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """``state`` as safetensors bytes (what a worker on another host sends back instead of writing a file)."""
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in state.items()})


def weights_from_bytes(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(data)
