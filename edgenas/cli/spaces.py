"""``edgenas spaces`` and ``edgenas arch``: search spaces and single architectures."""

from __future__ import annotations

import argparse
import json

import numpy as np

from edgenas.cli.common import (
    _add_space_args,
    _add_task_args,
    _arch,
    _positive,
    _space,
)
from edgenas.errors import ArchitectureError


def add_spaces_command(sub) -> None:
    spaces = sub.add_parser("spaces", help="inspect search spaces", description="Inspect search spaces.")
    spaces_sub = spaces.add_subparsers(dest="action", metavar="ACTION", required=True)
    spaces_sub.add_parser("list", help="list the preset spaces")
    show = spaces_sub.add_parser("show", help="describe a space (preset name or .yaml/.toml file)")
    show.add_argument("space", help="preset name or space file")
    show.add_argument("--resolution", type=int, nargs="+", metavar="R", help="replace the resolution choices")
    show.add_argument("--width", type=float, nargs="+", metavar="W", help="replace the width-multiplier choices")
    _add_task_args(show)
    show.add_argument("--json", action="store_true", help="print the definition as JSON")


def cmd_spaces(args: argparse.Namespace) -> int:
    from edgenas.space.mbconv import get_space, list_spaces
    from edgenas.space.ops import OpIndex

    if args.action == "list":
        for name in list_spaces():
            space = get_space(name)
            print(f"{name:10s} {space.fingerprint}  {space.description}")
        return 0
    space = _space(args)
    n_ops = len(OpIndex(space, _positive("--in-channels", args.in_channels), _positive("--num-classes", args.num_classes)))
    if args.json:
        print(json.dumps({**space.to_dict(), "fingerprint": space.fingerprint, "n_ops": n_ops}, indent=2))
        return 0
    for line in space.describe():
        print(line)
    print(f"ops         {n_ops} distinct (for {args.in_channels} input channels, {args.num_classes} classes)")
    return 0


def add_arch_command(sub) -> None:
    arch = sub.add_parser(
        "arch",
        help="sample, inspect and export architectures",
        description="Architectures print as r<resolution>-w<width>-[<blocks>]..., e.g. r32-w1-[k3e6,k5e4][k3e3]...",
    )
    arch_sub = arch.add_subparsers(dest="action", metavar="ACTION", required=True)
    sample = arch_sub.add_parser("sample", help="print random architectures of a space")
    _add_space_args(sample)
    sample.add_argument("-n", type=int, default=5, help="how many (default: 5)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    ashow = arch_sub.add_parser("show", help="ops and analytic costs of an architecture")
    ashow.add_argument("arch", help="architecture string")
    _add_space_args(ashow)
    _add_task_args(ashow)
    ashow.add_argument("--precision", choices=["int8", "fp32"], default="int8", help="deployed precision (default: int8)")
    ashow.add_argument("--json", action="store_true", help="print one JSON object")

    train = arch_sub.add_parser("train", help="train one architecture stand-alone with the default search recipe")
    train.add_argument("arch", help="architecture string (its resolution is used)")
    train.add_argument("--space", default="small", help="preset name or .yaml/.toml file (default: small)")
    train.add_argument("--data", default="digits", help="digits, npz:FILE, imagefolder:DIR or cifar10:DIR")
    train.add_argument("--epochs", type=int, help="training epochs, at least (default: the search's, raised by its "
                                                   "minimum of steps)")
    train.add_argument("--seed", type=int, default=0, help="seed (a search's with the same seed trains alike)")
    train.add_argument("--json", action="store_true", help="print one JSON object")

    export = arch_sub.add_parser(
        "export", help="build an (untrained) architecture and export it to ONNX, checked in ONNX Runtime"
    )
    export.add_argument("arch", help="architecture string")
    _add_space_args(export)
    _add_task_args(export)
    export.add_argument("--out", required=True, help="path of the .onnx file to write")
    export.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")


def cmd_arch(args: argparse.Namespace) -> int:
    if args.action == "train":
        from edgenas.search.evaluators import train_architecture

        result = train_architecture(args.arch, args.space, args.data, args.epochs and _positive("--epochs", args.epochs),
                                    args.seed)
        if result.status != "ok":
            raise ArchitectureError(f"training {args.arch} failed: {result.reason}")
        if args.json:
            print(json.dumps({"arch": args.arch, "accuracy": result.accuracy, "epochs": result.epochs,
                              "steps": result.steps, "train_seconds": round(result.train_seconds, 2)}))
        else:
            print(f"{args.arch}: accuracy {100 * result.accuracy:.2f}% after {result.epochs} epochs ({result.steps} "
                  f"steps, {result.train_seconds:.1f} s)")
        return 0
    space = _space(args)
    if args.action == "sample":
        rng = np.random.default_rng(args.seed)
        for _ in range(_positive("-n", args.n)):
            print(space.sample(rng))
        return 0

    arch = _arch(space, args.arch)
    in_channels = _positive("--in-channels", args.in_channels)
    num_classes = _positive("--num-classes", args.num_classes)
    if args.action == "show":
        from edgenas.space.cost import architecture_cost
        from edgenas.space.ops import decompose

        cost = architecture_cost(space, arch, in_channels, num_classes, args.precision)
        ops = decompose(space, arch, in_channels, num_classes)
        if args.json:
            print(json.dumps({"arch": str(arch), "space": space.name, "fingerprint": space.fingerprint,
                              **cost.as_dict(), "ops": [str(k) for k in ops]}))
            return 0
        print(f"architecture {arch}")
        print(f"space        {space.name} (fingerprint {space.fingerprint})")
        print(f"input        {in_channels}x{arch.resolution}x{arch.resolution}, {num_classes} classes")
        print(f"params       {cost.params:,}")
        print(f"MACs         {cost.macs / 1e6:,.2f} M")
        print(f"size         {cost.size_kb:,.1f} KiB ({cost.precision.value})")
        print(f"peak memory  {cost.peak_memory_kb:,.1f} KiB ({cost.precision.value})")
        print(f"ops          {len(ops)}")
        for key in ops:
            print(f"  {key}")
        return 0

    # export
    import torch

    from edgenas.nn.model import build_model, export_onnx, onnx_matches_torch

    torch.manual_seed(args.seed)
    model = build_model(space, arch, num_classes, in_channels)
    path = export_onnx(model, model.input_shape, args.out)
    inputs = np.random.default_rng(args.seed).standard_normal((4, *model.input_shape)).astype(np.float32)
    diff = onnx_matches_torch(model, path, inputs)
    print(f"wrote {path} (untrained weights); ONNX Runtime matches torch, max abs difference {diff:.2e}")
    return 0
