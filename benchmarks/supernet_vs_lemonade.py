"""One supernet for three devices against one LEMONADE search per device: compute at equal front quality.

For each of three device tables (this machine's LiteRT fp32, ONNX Runtime int8 and fp32), with objectives error and
latency on the same data, space, resolution and seed (the drift check off, so both read the table alike):

- **LEMONADE**: the default search (``--budget`` networks trained or fine-tuned), scored after every trained network
  (hypervolume against the run's reference point, over the training seconds summed so far);
- **supernet**: one supernet trained once for all three devices (or ``--supernet DIR``), then per device a search of
  ``--subnets`` subnets (``edgenas search --supernet DIR``) whose front members are fine-tuned from their supernet
  weights for ``--finetune`` epochs (``--finetune-front``); the front is scored on the *fine-tuned* accuracies, so
  both routes are scored on trained networks' validation accuracy and the same reference point.

Equal front quality: for each device, the training seconds LEMONADE needed to first reach the supernet route's
hypervolume (or that it never did within its budget), against the supernet route's own seconds (its search and
fine-tuning, plus a third of the supernet's training).  Totals over the three devices compare one supernet with
three LEMONADE searches.

    python benchmarks/supernet_vs_lemonade.py [--supernet DIR] [--budget 64] [--subnets 1000] [--finetune 5]

Writes ``benchmarks/results/supernet_vs_lemonade.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

from common import compute_curve, first_reaching

import edgenas
from edgenas.nn.supernet import SupernetConfig, load_supernet, train_supernet
from edgenas.search.archive import Archive
from edgenas.search.config import SearchConfig
from edgenas.search.loop import SearchRun, run_search
from edgenas.search.objectives import parse_objectives
from edgenas.search.pareto import hypervolume, pareto_front
from edgenas.space.mbconv import get_space

DEVICES = (("local-litert", "fp32"), ("local-ort", "int8"), ("local-ort", "fp32"))


def lemonade(common: dict, run_dir: Path, objectives) -> dict:
    config = SearchConfig(**common, run_dir=str(run_dir))
    started = time.perf_counter()
    result = run_search(config, progress=False, log=lambda m: None)
    seconds = time.perf_counter() - started
    with Archive(run_dir / "archive.sqlite") as archive:
        evaluations = archive.all()
    reference = json.loads((run_dir / "config.json").read_text())["reference_point"]
    curve = compute_curve(evaluations, objectives, reference)
    return {"seconds": round(seconds, 1), "train_seconds": round(sum(e.train_seconds for e in evaluations), 1),
            "trained": result.trained, "front": len(result.front), "hypervolume": result.hypervolume,
            "reference": reference, "curve": curve}


def supernet_route(common: dict, folder: Path, run_dir: Path, subnets: int, finetune: int, objectives) -> dict:
    config = SearchConfig(**{**common, "budget": subnets}, supernet=str(folder), run_dir=str(run_dir))
    run = SearchRun(config, progress=False, log=lambda m: None)
    started = time.perf_counter()
    with run:
        while run.step():
            pass
        search_s = time.perf_counter() - started
        started = time.perf_counter()
        tuned = {arch: accuracy for arch, _, accuracy in run.finetune_front(finetune)}
        finetune_s = time.perf_counter() - started
    front = run.result.front
    reference = json.loads((run_dir / "config.json").read_text())["reference_point"]
    retuned = [dataclasses.replace(e, accuracy=tuned[e.arch],
                                   objectives={**e.objectives, "error": 100 * (1 - tuned[e.arch])})
               for e in front if e.arch in tuned]
    return {"search_seconds": round(search_s, 1), "finetune_seconds": round(finetune_s, 1),
            "evaluations": run.result.evaluations, "front": len(front),
            "hypervolume_supernet_accuracy": run.result.hypervolume,
            "hypervolume": hypervolume(pareto_front(retuned, objectives), objectives, reference),
            "reference": reference,
            "members": [{"arch": e.arch, "latency": e.objectives["latency"], "supernet": e.accuracy,
                         "finetuned": tuned.get(e.arch)} for e in front]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--space", default="small")
    parser.add_argument("--resolution", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=SupernetConfig().epochs, help="supernet epochs")
    parser.add_argument("--supernet", help="a trained supernet folder to reuse (its recorded training time counts)")
    parser.add_argument("--budget", type=int, default=SearchConfig().budget, help="networks per LEMONADE search")
    parser.add_argument("--subnets", type=int, default=1000, help="subnets per supernet search")
    parser.add_argument("--finetune", type=int, default=5, help="fine-tuning epochs per supernet front member")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objectives", default="error,latency")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "supernet_vs_lemonade.json"))
    args = parser.parse_args()

    objectives = parse_objectives(args.objectives)
    common = {"data": args.data, "space": args.space, "resolution": args.resolution, "seed": args.seed,
              "objectives": args.objectives, "budget": args.budget,
              "drift_check": False}  # both routes predict latency from the same table calibration
    space = get_space(args.space).with_choices(resolutions=[args.resolution])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.supernet) if args.supernet else Path(tmp) / "supernet"
        started = time.perf_counter()
        if not args.supernet:
            train_supernet(space, args.data, folder, SupernetConfig(epochs=args.epochs, seed=args.seed),
                           progress=False)
        supernet_s = float(load_supernet(folder).meta["seconds"]) if args.supernet else time.perf_counter() - started
        print(f"supernet: {supernet_s:.0f} s of training", flush=True)
        for device, precision in DEVICES:
            name = f"{device}-{precision}"
            settings = {**common, "device": device, "precision": precision}
            lem = lemonade(settings, Path(tmp) / f"lemonade-{name}", objectives)
            sup = supernet_route(settings, folder, Path(tmp) / f"supernet-{name}", args.subnets, args.finetune,
                                 objectives)
            if sup["reference"] != lem["reference"]:
                raise SystemExit(f"{name}: the two runs have different reference points: {lem['reference']} {sup['reference']}")
            reached = first_reaching(lem["curve"], sup["hypervolume"])
            route_s = sup["search_seconds"] + sup["finetune_seconds"] + supernet_s / len(DEVICES)
            rows.append({"device": device, "precision": precision, "lemonade": lem, "supernet": sup,
                         "supernet_route_seconds": round(route_s, 1),
                         "lemonade_train_seconds_to_supernet_hv": None if reached is None else reached["train_seconds"],
                         "lemonade_trained_to_supernet_hv": None if reached is None else reached["trained"]})
            when = ("never, within its budget" if reached is None else
                    f"after {reached['train_seconds']:.0f} s of training ({reached['trained']} networks)")
            print(f"{name}: LEMONADE {lem['trained']} networks in {lem['seconds']:.0f} s (training {lem['train_seconds']:.0f} s), "
                  f"front {lem['front']}, hypervolume {lem['hypervolume']:.4g}; supernet route {route_s:.0f} s "
                  f"(search {sup['search_seconds']:.0f} s, fine-tuning {sup['finetune_seconds']:.0f} s, a third of "
                  f"the supernet {supernet_s / len(DEVICES):.0f} s), front {sup['front']}, hypervolume "
                  f"{sup['hypervolume']:.4g} fine-tuned ({sup['hypervolume_supernet_accuracy']:.4g} at supernet "
                  f"accuracy); LEMONADE reached it {when}", flush=True)

    total_lem = sum(r["lemonade"]["seconds"] for r in rows)
    total_sup = supernet_s + sum(r["supernet"]["search_seconds"] + r["supernet"]["finetune_seconds"] for r in rows)
    print(f"three devices: LEMONADE {total_lem:.0f} s, one supernet + three searches {total_sup:.0f} s "
          f"(ratio {total_sup / total_lem:.2f})", flush=True)
    out = {"benchmark": "supernet_vs_lemonade", "edgenas": edgenas.__version__, "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%d"), **{k: v for k, v in vars(args).items() if k not in ("out",)},
           "supernet_train_seconds": round(supernet_s, 1), "total_lemonade_seconds": round(total_lem, 1),
           "total_supernet_seconds": round(total_sup, 1), "devices": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
