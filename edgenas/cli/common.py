"""Helpers shared by the commands: space and task flags, the flags of a settings dataclass."""

from __future__ import annotations

import argparse

from edgenas.errors import ArchitectureError, EdgenasError


def _add_space_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default="small", help="preset name or .yaml/.toml file (default: small)")
    p.add_argument(
        "--resolution", type=int, nargs="+", metavar="R", help="replace the space's input-resolution choices"
    )
    p.add_argument("--width", type=float, nargs="+", metavar="W", help="replace the space's width-multiplier choices")


def _add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in-channels", type=int, default=3, help="input image channels (default: 3)")
    p.add_argument("--num-classes", type=int, default=10, help="number of classes (default: 10)")


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise EdgenasError(f"{name} must be a positive integer, got {value}")
    return value


def _space(args: argparse.Namespace):
    from edgenas.space.mbconv import get_space

    space = get_space(args.space)
    if getattr(args, "resolution", None) or getattr(args, "width", None):
        space = space.with_choices(args.resolution, args.width)
    return space


def _arch(space, text: str):
    try:
        return space.parse(text)
    except ArchitectureError as exc:
        if "gene resolution" in str(exc) or "gene width" in str(exc):
            raise ArchitectureError(f"{exc}; use --resolution/--width to change the space's choices") from None
        raise


_TYPES = {"int": int, "float": float, "str": str}


def add_setting_flags(parser: argparse.ArgumentParser, config_class) -> None:
    """One flag per field of ``config_class`` (a dataclass declared with :func:`edgenas.search.config.setting`): the flag,
    type, default, choices and help come from the field's declaration, so they cannot drift from it."""
    from dataclasses import MISSING, fields

    from edgenas.search.config import setting_flag

    for f in fields(config_class):
        meta = f.metadata
        if "help" not in meta:
            continue
        flag = setting_flag(f)
        text = meta["help"]() if callable(meta["help"]) else meta["help"]
        default = None if f.default is MISSING else f.default
        if default is not None and "(default" not in text:
            text += f" (default: {default})"
        if meta.get("kind") is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=text)
            continue
        kind = _TYPES[str(f.type).split("|")[0].strip()]
        parser.add_argument(flag, dest=f.name, type=kind, default=default, help=text,
                            choices=list(meta["choices"]) if meta.get("choices") else None, metavar=meta.get("metavar"))
