"""How much faster a training step is with edgenas's depthwise path than with torch's plain one.

Every network trained here (search candidates, ``edgenas arch train``, fine-tunes) runs its depthwise
convolutions through :class:`edgenas.nn.model.DepthwiseConv2d`, which while training convolves only the kernel taps
that can meet the feature map (a 7x7 kernel on a 2x2 map is a 3x3 one), and :func:`edgenas.nn.train.train_candidate`
trains in channels-last memory layout.  The crop gives the same outputs and gradients as the whole kernel
(tests/test_model.py); channels-last changes only the memory layout (float sums in another order).  This script
times one SGD step (forward, backward, update; batch 64) of the same network, same weights, four ways: torch's plain
``Conv2d`` in NCHW (what training did before), the cropped kernel alone, channels-last alone, and both (what
training does now).  Rounds are interleaved and the median is kept, so drift on a shared machine hits every variant
alike.

Run: ``python benchmarks/training_speed.py [--rounds 5] [--steps 10] [--threads 1]``; writes
``benchmarks/results/training_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import edgenas
from edgenas.nn.model import DepthwiseConv2d, build_model
from edgenas.space.mbconv import get_space

CASES = (  # (label, space, resolution, channels, architecture: "largest" or a sampling seed)
    ("small r8, largest", "small", 8, 1, "largest"),
    ("small r8, random", "small", 8, 1, 3),
    ("small r32, largest", "small", 32, 3, "largest"),
)
VARIANTS = ("plain NCHW", "cropped", "channels-last", "cropped + channels-last")


def _largest(space):
    from edgenas.nn.supernet import Supernet

    return Supernet(space, 1, 10).largest()


def _step_seconds(model, x, y, steps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    model.train()

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def _variant(model, x, name: str):
    import copy

    model = copy.deepcopy(model)
    if "cropped" not in name:
        for m in model.modules():
            if isinstance(m, DepthwiseConv2d):
                m.__class__ = torch.nn.Conv2d  # torch's own forward: the whole kernel on every map
    if "channels-last" in name:
        return model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return model, x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "training_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for label, space_name, resolution, channels, which in CASES:
        space = get_space(space_name).with_choices(resolutions=[resolution])
        arch = _largest(space) if which == "largest" else space.sample(np.random.default_rng(which))
        torch.manual_seed(0)
        model = build_model(space, arch, 10, channels)
        x, y = torch.randn(64, channels, resolution, resolution), torch.randint(0, 10, (64,))
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.rounds):
            for name in VARIANTS:
                times[name].append(_step_seconds(*_variant(model, x, name), y, args.steps))
        ms = {name: 1000 * float(np.median(t)) for name, t in times.items()}
        speedup = ms["plain NCHW"] / ms["cropped + channels-last"]
        rows.append({"case": label, "arch": str(arch), "ms_per_step": {k: round(v, 2) for k, v in ms.items()},
                     "speedup": round(speedup, 2)})
        print(f"{label}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()) + f"; speed-up x{speedup:.2f}",
              flush=True)
    out = {"benchmark": "training_speed", "edgenas": edgenas.__version__, "machine": platform.machine(),
           "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "threads": args.threads,
           "rounds": args.rounds, "steps": args.steps, "batch": 64, "cases": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
