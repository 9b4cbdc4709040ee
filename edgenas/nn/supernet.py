"""A weight-sharing supernet of an MBConv space: train once, then every architecture's accuracy is a forward pass.

One network holds the largest architecture of the space; every architecture is a *subnet* of it:

- elastic depth: a stage of depth ``d`` runs the first ``d`` blocks of its stage;
- elastic kernel: a ``k x k`` depthwise kernel is the centre of the largest kernel;
- elastic expansion: a block with ``h`` hidden channels uses the first ``h`` of them; before every epoch the hidden
  channels are sorted by importance (the L1 norm of their projection weights, as Once-for-All does), so the first
  channels are the ones that matter;
- elastic width: a width multiplier uses the first channels of every layer;
- elastic resolution: each resolution of the space trains and is measured on the images resized to it.

Training follows the sandwich rule with in-place distillation (BigNAS): every step trains the largest subnet on
the labels, and the smallest and ``random_subnets`` random subnets on the largest one's soft predictions; the
gradients of all of them make one optimizer step.  It is deterministic under the seed on the CPU (data order and
subnet draws are seeded per epoch), and it resumes after a kill from the last finished epoch.

A subnet is measured by :meth:`LoadedSupernet.accuracy`: its BatchNorm statistics re-estimated on a fixed batch of
training images, then validation accuracy in the supernet's own forward pass.  :meth:`LoadedSupernet.model` gives
the same subnet, with the same statistics, as an ordinary :class:`EdgeNet` (what fine-tuning and export use).

Saved as ``DIR/supernet.safetensors`` (weights) and ``DIR/supernet.json`` (space definition and fingerprint, data,
normalisation, recipe, progress); ``DIR/checkpoint-EPOCH.safetensors`` holds the state to resume from while it
trains.  No pickle anywhere.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgenas import __version__
from edgenas.errors import DataError, SearchError
from edgenas.files import atomic_write_text
from edgenas.nn.model import EdgeNet, build_model, reachable_taps
from edgenas.space.genome import Architecture, Block
from edgenas.space.mbconv import SearchSpace, space_from_dict
from edgenas.space.ops import OpKey, decompose

__all__ = ["Supernet", "SupernetConfig", "LoadedSupernet", "load_supernet", "read_supernet", "train_supernet"]

FORMAT = "edgenas-supernet"
FORMAT_VERSION = 1
#: Training images whose BatchNorm statistics a subnet is measured with (fixed: the same for every subnet).
CALIBRATION_IMAGES = 256


@dataclass(frozen=True)
class SupernetConfig:
    """The recipe of a supernet (recorded in ``supernet.json``)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-5
    random_subnets: int = 2
    val_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or not self.lr > 0 or self.random_subnets < 0:
            raise SearchError("a supernet needs --epochs >= 1, --batch-size >= 2, --lr > 0 and --random-subnets >= 0")
        if not 0 < self.val_fraction < 1:
            raise SearchError("--val-fraction must be between 0 and 1")


# ------------------------------------------------------------------ the network
def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, n: int, training: bool) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean[:n], bn.running_var[:n], bn.weight[:n], bn.bias[:n], training,
                        0.1 if bn.momentum is None else bn.momentum, bn.eps)


class _Block(nn.Module):
    """The largest MBConv block of one slot (stage, block); subnets slice it."""

    def __init__(self, cin: int, cout: int, hidden: int, kernel: int, expand: bool) -> None:
        super().__init__()
        self.kernel = kernel
        self.expand = nn.Conv2d(cin, hidden, 1, bias=False) if expand else None
        self.expand_bn = nn.BatchNorm2d(hidden) if expand else None
        self.depthwise = nn.Conv2d(hidden, hidden, kernel, groups=hidden, padding=kernel // 2, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(hidden)
        self.project = nn.Conv2d(hidden, cout, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(cout)

    def kernel_weight(self, hidden: int, kernel: int) -> torch.Tensor:
        """The centre ``kernel`` x ``kernel`` of the first ``hidden`` depthwise kernels."""
        o = (self.kernel - kernel) // 2
        return self.depthwise.weight[:hidden, :, o : o + kernel, o : o + kernel]

    def forward(self, x: torch.Tensor, key: OpKey) -> torch.Tensor:
        hidden, training = key.hidden, self.training
        y = x
        if key.expansion != 1:
            y = F.relu6(_bn(F.conv2d(y, self.expand.weight[:hidden, : key.cin]), self.expand_bn, hidden, training))
        weight = reachable_taps(self.kernel_weight(hidden, key.kernel), y.shape[-2:])  # same output, faster
        y = F.conv2d(y, weight, stride=key.stride, padding=(weight.shape[-2] // 2, weight.shape[-1] // 2),
                     groups=hidden)
        y = F.relu6(_bn(y, self.depthwise_bn, hidden, training))
        y = _bn(F.conv2d(y, self.project.weight[: key.cout, :hidden]), self.project_bn, key.cout, training)
        return x + y if key.residual else y

    @torch.no_grad()
    def sort_hidden(self) -> None:
        """Order the hidden channels by importance (L1 norm of their projection weights), function-preserving."""
        order = torch.argsort(self.project.weight.abs().sum(dim=(0, 2, 3)), descending=True)
        if self.expand is not None:
            self.expand.weight.copy_(self.expand.weight[order])
            _permute_bn(self.expand_bn, order)
        self.depthwise.weight.copy_(self.depthwise.weight[order])
        _permute_bn(self.depthwise_bn, order)
        self.project.weight.copy_(self.project.weight[:, order])


def _permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        tensor = getattr(bn, name)
        tensor.copy_(tensor[order])


class Supernet(nn.Module):
    """Every architecture of an MBConv ``space`` in one network; ``forward(x, arch)`` runs one subnet."""

    def __init__(self, space: SearchSpace, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.space, self.in_channels, self.num_classes = space, in_channels, num_classes
        stem_c, stage_c, head_c = space.channels(max(space.widths))
        self.stem = nn.Conv2d(in_channels, stem_c, space.stem.kernel, space.stem.stride, space.stem.kernel // 2,
                              bias=False)
        self.stem_bn = nn.BatchNorm2d(stem_c)
        self.blocks = nn.ModuleList()
        for s, st in enumerate(space.stages):
            stage = nn.ModuleList()
            for b in range(st.max_depth):
                cin = (stem_c if s == 0 else stage_c[s - 1]) if b == 0 else stage_c[s]
                stage.append(_Block(cin, stage_c[s], cin * max(st.expansions), max(st.kernels),
                                    max(st.expansions) != 1))
            self.blocks.append(stage)
        self.head = nn.Conv2d(stage_c[-1], head_c, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(head_c)
        self.classifier = nn.Linear(head_c, num_classes)
        self._keys: dict[str, list[OpKey]] = {}
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def keys(self, arch: Architecture) -> list[OpKey]:
        text = str(arch)
        if text not in self._keys:
            self._keys[text] = decompose(self.space, arch, self.in_channels, self.num_classes)
        return self._keys[text]

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        keys = self.keys(arch)
        stem, head = keys[0], keys[-2]
        x = F.relu6(_bn(F.conv2d(x, self.stem.weight[: stem.cout], stride=stem.stride, padding=stem.kernel // 2),
                        self.stem_bn, stem.cout, self.training))
        blocks = iter(keys[1:-2])
        for s, depth in enumerate(arch.depths):
            for b in range(depth):
                x = self.blocks[s][b](x, next(blocks))
        x = F.relu6(_bn(F.conv2d(x, self.head.weight[: head.cout, : head.cin]), self.head_bn, head.cout,
                        self.training))
        return F.linear(x.mean(dim=(2, 3)), self.classifier.weight[:, : head.cout], self.classifier.bias)

    def sort_channels(self) -> None:
        for stage in self.blocks:
            for block in stage:
                block.sort_hidden()

    def largest(self) -> Architecture:
        return _extreme(self.space, max)

    def smallest(self) -> Architecture:
        return _extreme(self.space, min)

    @torch.no_grad()
    def subnet(self, arch: Architecture) -> EdgeNet:
        """An ordinary :class:`EdgeNet` of ``arch`` holding the supernet's weights for it (BatchNorm statistics
        still the supernet's: :meth:`LoadedSupernet.model` recalibrates them first)."""
        self.space.validate(arch)
        model = build_model(self.space, arch, self.num_classes, self.in_channels)
        keys = self.keys(arch)
        stem, head = keys[0], keys[-2]
        model.stem[0].weight.copy_(self.stem.weight[: stem.cout])
        _copy_bn(self.stem_bn, model.stem[1], stem.cout)
        blocks = iter(keys[1:-2])
        for s, depth in enumerate(arch.depths):
            for b in range(depth):
                key, src, dst = next(blocks), self.blocks[s][b], model.stages[s][b]
                if key.expansion != 1:
                    dst.expand[0].weight.copy_(src.expand.weight[: key.hidden, : key.cin])
                    _copy_bn(src.expand_bn, dst.expand[1], key.hidden)
                dst.depthwise[0].weight.copy_(src.kernel_weight(key.hidden, key.kernel))
                _copy_bn(src.depthwise_bn, dst.depthwise[1], key.hidden)
                dst.project[0].weight.copy_(src.project.weight[: key.cout, : key.hidden])
                _copy_bn(src.project_bn, dst.project[1], key.cout)
        model.head[0].weight.copy_(self.head.weight[: head.cout, : head.cin])
        _copy_bn(self.head_bn, model.head[1], head.cout)
        model.classifier.linear.weight.copy_(self.classifier.weight[:, : head.cout])
        model.classifier.linear.bias.copy_(self.classifier.bias)
        return model


def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d, n: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(getattr(src, name)[:n])


def _extreme(space: SearchSpace, pick) -> Architecture:
    stages = tuple(tuple(Block(pick(st.kernels), pick(st.expansions)) for _ in range(pick(st.depths)))
                   for st in space.stages)
    return space.validate(Architecture(pick(space.resolutions), pick(space.widths), stages))


# -------------------------------------------------------------------- the data
@dataclass
class _Data:
    """The images of each resolution of the space, normalised with their training statistics, same split."""

    train: dict[int, tuple[np.ndarray, np.ndarray]]
    val: dict[int, tuple[np.ndarray, np.ndarray]]
    calibration: dict[int, np.ndarray]
    normalisation: dict[int, dict[str, list[float]]]


def _prepare(dataset, space: SearchSpace, config: SupernetConfig) -> _Data:
    train, val, calibration, norm = {}, {}, {}, {}
    for r in space.resolutions:
        split = dataset.resized(r).split(config.val_fraction, config.seed)
        train[r], val[r] = split.normalised("train"), split.normalised("val")
        pick = np.random.default_rng([config.seed, 5]).permutation(len(train[r][1]))[:CALIBRATION_IMAGES]
        calibration[r] = train[r][0][np.sort(pick)]
        norm[r] = {"mean": split.mean.tolist(), "std": split.std.tolist()}
    if min(len(v[1]) for v in val.values()) < 1 or min(len(t[1]) for t in train.values()) < 2:
        raise DataError(f"{dataset.name}: too few images for a train/validation split")
    return _Data(train, val, calibration, norm)


# ------------------------------------------------------------------ training
def _checkpoints(out: Path) -> list[Path]:
    return sorted(out.glob("checkpoint-*.safetensors"))


def _identity(space: SearchSpace, data_spec: str, dataset, config: SupernetConfig) -> dict:
    return {"space": {**space.to_dict(), "fingerprint": space.fingerprint}, "data": data_spec,
            "images": int(len(dataset.y)), "classes": list(dataset.classes), "in_channels": dataset.in_channels,
            "recipe": asdict(config)}


def train_supernet(space: SearchSpace, data_spec: str, out: str | Path, config: SupernetConfig = SupernetConfig(),
                   *, threads: int | None = None, progress: bool = True,
                   log: Callable[[str], None] = lambda m: None) -> Path:
    """Train the supernet of ``space`` on the data ``data_spec`` (``--data``) into ``out``; resumes an unfinished
    one with the same settings, refuses a folder holding another.  Returns ``out``."""
    from edgenas.nn.data import load_data
    from edgenas.nn.train import save_weights, steps_per_epoch

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SearchError(f"--out {out} is a file, not a folder; choose another --out")
    dataset = load_data(data_spec)
    identity = _identity(space, data_spec, dataset, config)
    meta_path = out / "supernet.json"
    start_epoch, state = 0, None
    if meta_path.is_file():
        saved = _read_meta(meta_path)
        if {k: saved.get(k) for k in identity} != identity:
            raise SearchError(f"{out} holds a supernet with other settings (space, data or recipe); choose another "
                              "--out, or remove it")
        if saved.get("complete"):
            log(f"{out} holds this supernet, trained already")
            return out
        start_epoch = int(saved.get("epochs_done", 0))
        if start_epoch:
            from safetensors.torch import load_file

            state = load_file(str(out / saved["checkpoint"]))
            log(f"resuming the supernet in {out} after epoch {start_epoch} of {config.epochs}")
    out.mkdir(parents=True, exist_ok=True)
    data = _prepare(dataset, space, config)
    torch.set_num_threads(threads or torch.get_num_threads())
    torch.manual_seed(config.seed)
    net = Supernet(space, dataset.in_channels, len(dataset.classes))
    params = list(net.parameters())
    opt = torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    if state is not None:
        net.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
        names = [n for n, _ in net.named_parameters()]
        for name, p in zip(names, params):
            if f"momentum.{name}" in state:
                opt.state[p]["momentum_buffer"] = state[f"momentum.{name}"].clone()
    r_max = max(space.resolutions)
    per_epoch = steps_per_epoch(len(data.train[r_max][1]), config.batch_size)
    total = per_epoch * config.epochs
    seconds = float(saved.get("seconds", 0.0)) if start_epoch else 0.0
    bar = _bar(config.epochs, start_epoch, progress)
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.monotonic()
            _train_epoch(net, opt, data, config, epoch, per_epoch, total)
            seconds += time.monotonic() - started
            checkpoint = f"checkpoint-{epoch + 1:04d}.safetensors"
            blob = {f"model.{k}": v for k, v in net.state_dict().items()}
            for name, p in net.named_parameters():
                if "momentum_buffer" in opt.state.get(p, {}):
                    blob[f"momentum.{name}"] = opt.state[p]["momentum_buffer"]
            save_weights(blob, out / checkpoint)
            _write_meta(meta_path, {**identity, "epochs_done": epoch + 1, "checkpoint": checkpoint,
                                    "seconds": round(seconds, 2), "complete": False,
                                    "normalisation": {str(r): v for r, v in data.normalisation.items()}})
            for old in _checkpoints(out):
                if old.name != checkpoint:
                    old.unlink(missing_ok=True)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    save_weights(net.state_dict(), out / "supernet.safetensors")
    _write_meta(meta_path, {**identity, "epochs_done": config.epochs, "checkpoint": None, "seconds": round(seconds, 2),
                            "complete": True, "normalisation": {str(r): v for r, v in data.normalisation.items()},
                            "edgenas": __version__})
    for old in _checkpoints(out):
        old.unlink(missing_ok=True)
    log(f"supernet trained in {seconds:.0f} s: {out}")
    return out


def _train_epoch(net: Supernet, opt, data: _Data, config: SupernetConfig, epoch: int, per_epoch: int,
                 total: int) -> None:
    """One epoch of sandwich-rule steps (see the module docstring); the learning rate follows a cosine per step."""
    space = net.space
    rng = np.random.default_rng([config.seed, epoch])
    r_max = max(space.resolutions)
    n = len(data.train[r_max][1])
    order = rng.permutation(n)
    largest, smallest = net.largest(), net.smallest()
    net.sort_channels()
    net.train()
    xs = {r: torch.from_numpy(x).contiguous(memory_format=torch.channels_last) for r, (x, _) in data.train.items()}
    y = torch.from_numpy(data.train[r_max][1])
    for i in range(per_epoch):
        batch = torch.from_numpy(order[i * config.batch_size : (i + 1) * config.batch_size])
        if len(batch) < 2:
            continue
        step = epoch * per_epoch + i
        for group in opt.param_groups:
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / total))
        opt.zero_grad(set_to_none=True)
        logits = net(xs[largest.resolution][batch], largest)
        loss = F.cross_entropy(logits, y[batch])
        loss.backward()
        teacher = F.softmax(logits.detach(), dim=1)
        for arch in [smallest, *(space.sample(rng) for _ in range(config.random_subnets))]:
            student = F.log_softmax(net(xs[arch.resolution][batch], arch), dim=1)
            F.kl_div(student, teacher, reduction="batchmean").backward()
        if not torch.isfinite(loss):
            raise SearchError(f"supernet training diverged in epoch {epoch + 1} (loss {loss.item()}); lower --lr")
        opt.step()


def _bar(epochs: int, done: int, progress: bool):
    if not progress:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=epochs, initial=done, desc="supernet", unit="epoch", file=sys.stderr, dynamic_ncols=True,
                disable=None)


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SearchError(f"{path} cannot be read ({exc}); train the supernet again into another --out") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise SearchError(f"{path} is not an edgenas supernet (format {FORMAT} version {FORMAT_VERSION})")
    return meta


def _write_meta(path: Path, meta: dict) -> None:
    atomic_write_text(path, json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **meta}, indent=1) + "\n")


# ------------------------------------------------------------------- using one
class LoadedSupernet:
    """A trained supernet and its data, ready to measure subnets: :meth:`accuracy` and :meth:`model`."""

    def __init__(self, folder: Path, meta: dict, net: Supernet, data: _Data) -> None:
        self.folder, self.meta, self.net, self.data = folder, meta, net, data
        self.space = net.space

    @torch.no_grad()
    def _calibrate(self, arch: Architecture) -> None:
        """BatchNorm statistics of ``arch``'s subnet, estimated on the fixed calibration images (one batch)."""
        bns = [m for m in self.net.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.momentum = 1.0  # the statistics of this batch replace the stored ones
        self.net.train()
        try:
            self.net(self._input(self.data.calibration[arch.resolution]), arch)
        finally:
            for bn in bns:
                bn.momentum = 0.1
            self.net.eval()

    @staticmethod
    def _input(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).contiguous(memory_format=torch.channels_last)  # faster depthwise convolutions

    def model(self, arch: Architecture) -> EdgeNet:
        """The subnet of ``arch`` as an ordinary model (eval mode) with its recalibrated BatchNorm statistics: the
        network :meth:`accuracy` measures."""
        self._calibrate(arch)
        return self.net.subnet(arch).eval()

    @torch.no_grad()
    def accuracy(self, arch: Architecture) -> float:
        """Validation top-1 of the subnet of ``arch``, in [0, 1]."""
        self.space.validate(arch)
        self._calibrate(arch)
        x, y = self.data.val[arch.resolution]
        correct = 0
        for start in range(0, len(y), 512):
            logits = self.net(self._input(x[start : start + 512]), arch)
            correct += int((logits.argmax(1).numpy() == y[start : start + 512]).sum())
        return correct / len(y)


def read_supernet(folder: str | Path) -> tuple[dict, SearchSpace]:
    """The metadata and space of a trained supernet folder (checked: complete, space matching its fingerprint)."""
    folder = Path(folder)
    meta_path = folder / "supernet.json"
    if not meta_path.is_file():
        raise SearchError(f"{folder} is not a supernet folder (no supernet.json); train one with: edgenas supernet "
                          "train --out DIR")
    meta = _read_meta(meta_path)
    if not meta.get("complete"):
        raise SearchError(f"the supernet in {folder} is not fully trained ({meta.get('epochs_done', 0)} of "
                          f"{meta.get('recipe', {}).get('epochs', '?')} epochs): run edgenas supernet train again "
                          "with the same settings to finish it")
    space_dict = {k: v for k, v in meta["space"].items() if k != "fingerprint"}
    space = space_from_dict(space_dict, source=str(meta_path))
    if space.fingerprint != meta["space"].get("fingerprint"):
        raise SearchError(f"{meta_path}: its space definition does not match its fingerprint")
    return meta, space


def load_supernet(folder: str | Path, data_spec: str | None = None) -> LoadedSupernet:
    """A trained supernet folder, checked (complete, its weights match its space), with its data loaded (the data it
    was trained on, or ``data_spec``, which must have the same classes and channels)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from edgenas.nn.data import load_data

    folder = Path(folder)
    meta, space = read_supernet(folder)
    dataset = load_data(data_spec or meta["data"])
    if list(dataset.classes) != meta["classes"] or dataset.in_channels != meta["in_channels"]:
        raise SearchError(f"--data {data_spec} has other classes or channels than the supernet's data "
                          f"({meta['data']}: {len(meta['classes'])} classes, {meta['in_channels']} channel(s))")
    config = SupernetConfig(**meta["recipe"])
    net = Supernet(space, dataset.in_channels, len(dataset.classes))
    try:
        net.load_state_dict(load_file(str(folder / "supernet.safetensors")))
    except (OSError, SafetensorError, RuntimeError) as exc:
        raise SearchError(f"{folder}/supernet.safetensors cannot be loaded into its space: "
                          f"{str(exc).splitlines()[0]}") from None
    net.eval()
    return LoadedSupernet(folder, meta, net, _prepare(dataset, space, config))
