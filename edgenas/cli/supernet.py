"""``edgenas supernet``: train a weight-sharing supernet once, then measure any of its architectures in a pass."""

from __future__ import annotations

import argparse
import json

from edgenas.cli.common import _positive, _space
from edgenas.errors import ArchitectureError
from edgenas.logs import stderr_log


def add_supernet_command(sub) -> None:
    supernet = sub.add_parser("supernet", help="train a supernet once; measure subnets without training",
                              description="A weight-sharing supernet of an MBConv space (one-shot NAS).")
    actions = supernet.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train the supernet of a space on a dataset (resumable)")
    train.add_argument("--data", default="digits", help="digits, npz:FILE, imagefolder:DIR or cifar10:DIR")
    train.add_argument("--space", default="small", help="preset name or .yaml/.toml file (default: small)")
    train.add_argument("--resolution", type=int, nargs="+", metavar="R", help="the space's resolutions (default: "
                                                                                "its own)")
    train.add_argument("--width", type=float, nargs="+", metavar="W", help="replace the width-multiplier choices")
    train.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    train.add_argument("--batch-size", type=int, default=64, help="batch (default: 64)")
    train.add_argument("--lr", type=float, default=0.05, help="peak learning rate, cosine decay (default: 0.05)")
    train.add_argument("--random-subnets", type=int, default=2,
                       help="random subnets each step besides the largest and smallest (default: 2)")
    train.add_argument("--seed", type=int, default=0, help="seed of the weights, data order, subnets and split")
    train.add_argument("--out", required=True, help="supernet folder (resumed if it holds this unfinished supernet)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate = actions.add_parser("eval", help="validation accuracy of architectures, measured in the supernet")
    evaluate.add_argument("folder", help="supernet folder")
    evaluate.add_argument("archs", nargs="+", metavar="ARCH", help="architecture strings")
    evaluate.add_argument("--data", help="data with the supernet's classes (default: the data it was trained on)")
    evaluate.add_argument("--json", action="store_true", help='print {"accuracy": {ARCH: value}}')


def cmd_supernet(args: argparse.Namespace) -> int:
    from edgenas.nn.supernet import SupernetConfig, load_supernet, train_supernet

    if args.action == "train":
        config = SupernetConfig(epochs=_positive("--epochs", args.epochs), batch_size=args.batch_size, lr=args.lr,
                                random_subnets=args.random_subnets, seed=args.seed)
        train_supernet(_space(args), args.data, args.out, config, progress=not args.quiet, log=stderr_log)
        print(f"supernet: {args.out}")
        return 0
    supernet = load_supernet(args.folder, args.data)
    accuracy = {}
    for text in args.archs:
        try:
            arch = supernet.space.parse(text)
        except ArchitectureError as exc:
            raise ArchitectureError(f"{exc} (the supernet's space is '{supernet.space.name}' at resolution(s) "
                                    f"{', '.join(map(str, supernet.space.resolutions))})") from None
        accuracy[text] = supernet.accuracy(arch)
    if args.json:
        print(json.dumps({"accuracy": accuracy}))
    else:
        for text, value in accuracy.items():
            print(f"{100 * value:6.2f}%  {text}")
    return 0
