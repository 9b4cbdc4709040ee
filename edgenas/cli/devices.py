"""``edgenas devices``: the device descriptions."""

from __future__ import annotations

import argparse


def add_devices_command(sub) -> None:
    devices = sub.add_parser("devices", help="list and show device descriptions", description="Device descriptions.")
    devices_sub = devices.add_subparsers(dest="action", metavar="ACTION", required=True)
    devices_sub.add_parser("list", help="list the shipped devices")
    dshow = devices_sub.add_parser("show", help="show a device (shipped name or .yaml file)")
    dshow.add_argument("device")


def cmd_devices(args: argparse.Namespace) -> int:
    from edgenas.hardware.devices import get_device, list_devices

    if args.action == "list":
        for device in list_devices():
            print(f"{device.name:18s} {device.transport:28s} {device.runtime:12s} {device.description}")
        return 0
    for line in get_device(args.device).describe():
        print(line)
    return 0
