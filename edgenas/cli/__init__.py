"""The ``edgenas`` command: a thin layer over the library functions the tests also call (one module per command)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edgenas import __version__
from edgenas.cli import devices, export, profile, report, search, spaces, supernet, tables
from edgenas.errors import EdgenasError

DESCRIPTION = "Hardware-aware multi-objective neural architecture search for edge devices."


EPILOG = """\
workflow (three steps, possibly on different machines):
  1. profile  time every op of a search space on the device itself (ONNX Runtime,
              LiteRT; locally, over ssh or adb) -> latency_tables/<device>.json
  2. search   find the Pareto front of networks that balance accuracy, latency,
              energy, peak memory and size on that device (LEMONADE, NSGA-II,
              penalized RL, random search)
  3. export   write int8 ONNX/TFLite bundles of front members; deploy and verify
              them on the device

examples:
  edgenas search                            the default run: bundled digits, small space, this machine
  edgenas search --data npz:my.npz --objectives error,latency --max-latency-ms 2 --budget 100
  edgenas search --problem nb201:cifar100:pixel3 --budget 300
                                            a tabular benchmark: lookups instead of training
  edgenas problems list                     its datasets and devices
  edgenas front runs/RUN                    print a run's Pareto front
  edgenas report runs/RUN                   a self-contained HTML report (runs/RUN/report.html)
  edgenas report R1 R2 --compare --out c.html   fronts and hypervolume of several runs
  edgenas devices list                      the shipped device descriptions
  edgenas profile --device local-ort --space small --resolution 8 --in-channels 1
                                            time every op there -> latency_tables/*.json
  edgenas tables list                       the tables in latency_tables/
  edgenas tables validate TABLE             predicted vs measured latency of random networks
  edgenas tables recalibrate TABLE          re-time the table on the device now (devices drift)
  edgenas spaces list                       the preset search spaces
  edgenas spaces show small                 a space's stages, choices, fingerprint, op count
  edgenas arch sample --space small -n 3    random architectures of a space
  edgenas arch show ARCH --space small      an architecture's ops, parameters, MACs, size, memory
  edgenas arch export ARCH --out m.onnx     build it (untrained) and export it to ONNX, checked
                                            against torch in ONNX Runtime

  edgenas supernet train --data digits --space small --resolution 8 --out sn
                                            train once (weight sharing); then search any device:
  edgenas search --supernet sn --space small --device local-litert --precision fp32 --budget 1000
  edgenas arch train ARCH --space small     train one architecture stand-alone (default recipe)

  edgenas export runs/RUN                   int8 ONNX (and --formats tflite) bundles of the front
  edgenas deploy BUNDLE --device D          copy a bundle to a device and run its checks there
  edgenas verify BUNDLE --device D          measured vs predicted latency on the device

Add --debug before the command to see a traceback on errors.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error contract: ``edgenas: error: ...`` and exit status 1."""

    def error(self, message: str):  # type: ignore[override]
        print(f"edgenas: error: {message} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(1)


#: Each command: (name, the module that adds its parser and runs it, the suffix of its functions there).
COMMANDS = (
    ("spaces", spaces, "spaces"), ("arch", spaces, "arch"), ("devices", devices, "devices"),
    ("profile", profile, "profile"), ("search", search, "search"), ("problems", search, "problems"),
    ("report", report, "report"), ("front", search, "front"), ("export", export, "exp"),
    ("deploy", export, "deploy"), ("verify", export, "verify"), ("tables", tables, "tables"),
    ("supernet", supernet, "supernet"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edgenas", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"edgenas {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, module, suffix in COMMANDS:
        getattr(module, f"add_{suffix}_command")(sub)
    return parser


def _handler(command: str):
    module = next(m for c, m, _ in COMMANDS if c == command)
    return getattr(module, f"cmd_{command}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _handler(args.command)(args)
    except EdgenasError as exc:
        if args.debug:
            raise
        print(f"edgenas: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgenas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0



if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
