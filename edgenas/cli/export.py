"""``edgenas export``, ``deploy`` and ``verify``: bundles of front members, on the device."""

from __future__ import annotations

import argparse
import json

from edgenas.logs import stderr_log


def add_exp_command(sub) -> None:
    exp = sub.add_parser(
        "export",
        help="export front members as verified int8/fp32 ONNX and TFLite bundles",
        description=(
            "Rebuild members of a search run with their trained weights and write one bundle each: the model "
            "files (fp32, and int8 when --precision int8), metadata.json, sample images and run.py, a runner that "
            "needs only numpy and one runtime. Every file is checked in its runtime: outputs against torch, "
            "validation accuracy (an int8 drop above --max-drop points flags the member), size, and latency on "
            "this machine against the table's prediction. A summary table closes the command; it exits 1 if a "
            "member failed."
        ),
    )
    exp.add_argument("run", help="run folder")
    exp.add_argument("--members", default="front", help="'front' (default) or archive ids, e.g. 3,17 (see edgenas front)")
    exp.add_argument("--formats", default="onnx", help="onnx, tflite or onnx,tflite (default: onnx; tflite needs "
                     "pip install 'edgenas[tflite]')")
    exp.add_argument("--precision", choices=["int8", "fp32"], default="int8", help="deployed precision (default: int8)")
    exp.add_argument("--out", help="output folder (default: export/<run name>)")
    exp.add_argument("--max-drop", type=float, default=1.0,
                     help="flag members whose int8 accuracy drops more points than this (default: 1)")
    exp.add_argument("--no-latency", action="store_true", help="skip timing the files on this machine")
    exp.add_argument("--drift-check", action=argparse.BooleanOptionalAction, default=None,
                     help="re-time the run's table's anchors before comparing measured and predicted latency "
                          "(default: on when the run's device is this machine)")


def cmd_export(args: argparse.Namespace) -> int:
    from edgenas.export.bundle import export_run

    out, reports = export_run(args.run, members=args.members, formats=args.formats, precision=args.precision,
                              out=args.out, measure_latency=not args.no_latency, max_drop_pct=args.max_drop,
                              drift_check=args.drift_check, log=stderr_log)
    print(f"{'id':>4}  {'status':7}  {'file':18}  {'KiB':>8}  {'accuracy':>8}  {'here ms':>8}  {'pred ms':>8}  architecture")
    for r in reports:
        if not r.files:
            print(f"{r.id:4d}  {r.status:7}  {'-':18}  {'':>8}  {'':>8}  {'':>8}  {'':>8}  {r.arch}")
        for f in r.files:
            here = f"{f.latency_ms:8.3f}" if f.latency_ms is not None else f"{'-':>8}"
            pred = f"{f.predicted_latency_ms:8.3f}" if f.predicted_latency_ms is not None else f"{'-':>8}"
            print(f"{r.id:4d}  {r.status:7}  {f.file:18}  {f.size_kb:8.1f}  {100 * f.accuracy:7.2f}%  {here}  {pred}  "
                  f"{r.arch}")
    for r in reports:
        if r.reason:
            print(f"member {r.id} {r.status}: {r.reason}")
        for note in r.notes:
            print(f"member {r.id}: {note}")
    ok = sum(r.status != "failed" for r in reports)
    print(f"{ok} of {len(reports)} bundle(s) in {out} (summary.json lists every check)")
    return 0 if ok == len(reports) else 1


def add_deploy_command(sub) -> None:
    deploy = sub.add_parser("deploy", help="copy a bundle to a device and run it there (sample check and timing)")
    deploy.add_argument("bundle", help="bundle folder (export/<run>/member-<id>)")
    deploy.add_argument("--device", default="local-ort", help="shipped device name or .yaml file (default: local-ort)")
    deploy.add_argument("--model", help="model file of the bundle (default: the deployed precision for the device's runtime)")
    deploy.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_deploy(args: argparse.Namespace) -> int:
    from edgenas.export.bundle import deploy_bundle

    result = deploy_bundle(args.bundle, args.device, args.model)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    check, timing = result.check, result.time
    print(f"deployed {args.bundle} to {result.device}:{result.remote}")
    print(f"{result.model}: {check['correct']}/{check['samples']} sample images right; median "
          f"{timing['median_ms']:.3f} ms, p90 {timing['p90_ms']:.3f} ms over {timing['runs']} runs (run.py --time)")
    return 0


def add_verify_command(sub) -> None:
    verify = sub.add_parser("verify", help="time a bundle's model on a device and compare with the predicted latency")
    verify.add_argument("bundle", help="bundle folder (export/<run>/member-<id>)")
    verify.add_argument("--device", default="local-ort", help="shipped device name or .yaml file (default: local-ort)")
    verify.add_argument("--model", help="model file of the bundle (default: the deployed precision for the device's runtime)")
    verify.add_argument("--tolerance", type=float, default=0.2,
                        help="largest accepted relative error of the prediction (default: 0.2); exit 1 beyond it")
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument("--quiet", action="store_true", help="no progress bars")
    verify.add_argument("--drift-check", action=argparse.BooleanOptionalAction, default=None,
                        help="re-time the bundle's table's anchors on the device first and predict with the refitted "
                             "calibration (default: on for local devices, where the table is on this machine)")


def cmd_verify(args: argparse.Namespace) -> int:
    from edgenas.export.bundle import verify_bundle

    result = verify_bundle(args.bundle, args.device, args.model, tolerance=args.tolerance, quiet=args.quiet,
                           drift_check=args.drift_check, log=stderr_log)
    if args.json:
        print(json.dumps(result.to_dict()))
    elif not result.comparable:
        print(f"{result.model} on {result.device}: {result.measured_ms:.3f} ms measured; no comparable "
              f"prediction (the bundle's prediction is for {result.predicted_for}, another runtime or precision)")
    else:
        verdict = "within" if result.within_tolerance else "OUTSIDE"
        print(f"{result.model} on {result.device}: {result.measured_ms:.3f} ms measured, "
              f"{result.predicted_ms:.3f} ms predicted for {result.predicted_for} "
              f"({100 * (result.ratio - 1):+.1f}%, {verdict} +-{100 * args.tolerance:g}%)")
    return 1 if result.within_tolerance is False else 0
