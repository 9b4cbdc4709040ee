"""The run report: built from real runs, self-contained, rendered by a real headless Chromium."""

import html
import re
import shutil
import subprocess

import numpy as np
import pytest

from edgenas.cli import main
from edgenas.errors import SearchError
from edgenas.export.bundle import export_run
from edgenas.search.config import SearchConfig
from edgenas.search.loop import run_search
from edgenas.search.pareto import pareto_front
from edgenas.search.report import build_comparison, build_report
from edgenas.search.runs import load_run

NETWORK = re.compile(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/|<script[^>]+src=|<link[^>]+href=|@import|url\(", re.I)


def tabular(tmp_path, name, strategy="lemonade", budget=40, problem="nb201:cifar100:fpga"):
    run_dir = tmp_path / name
    run_search(SearchConfig(problem=problem, strategy=strategy, budget=budget, run_dir=str(run_dir)), progress=False,
               log=lambda m: None)
    return run_dir


@pytest.fixture(scope="module")
def trained(search_setup, tmp_path_factory):
    """A real LEMONADE run on digits (children with parents) and its exported bundles."""
    base = tmp_path_factory.mktemp("report")
    run = base / "run"
    config = SearchConfig(space=search_setup["space"], table=search_setup["table"], population=4, budget=8, epochs=2,
                          finetune_epochs=1, min_steps=0, drift_check=False, workers=2, run_dir=str(run))
    run_search(config, progress=False, log=lambda m: None)
    export_run(run, formats="onnx", out=base / "bundles", members="front", log=lambda m: None)
    return run, base / "bundles"


def test_the_report_names_every_front_member_and_loads_nothing_from_the_network(trained):
    run, bundles = trained
    page = build_report(run, bundles=bundles).read_text()
    _, evaluations, objectives = load_run(run)
    front = pareto_front(evaluations, objectives)
    assert front and all(html.escape(e.arch) in page for e in front)
    assert not NETWORK.search(page)
    assert all(html.escape(e.arch) in page for e in evaluations)  # the table of every evaluation
    children = [e for e in evaluations if e.parent]
    assert children and all(html.escape(e.parent) in page for e in children)  # lineage in hover and table
    for needle in ("latency (ms)", "memory (KiB)", "size (KiB)", "error (%)", "hypervolume", "training time (s)",
                   "local-ort", "measured latency (ms)", "model.int8.onnx", "lemonade"):
        assert needle in page, needle


def test_the_search_refreshes_the_report_unless_told_not_to(tmp_path):
    run = tabular(tmp_path, "with")
    page = (run / "report.html").read_text()
    front = [line.split(",")[0] for line in (run / "front.csv").read_text().splitlines()[1:]]
    assert front and all(html.escape(a) in page for a in front) and "nb201:cifar100:fpga" in page
    assert "every evaluation was a lookup" in page
    quiet = tmp_path / "without"
    run_search(SearchConfig(problem="nb201:cifar100:fpga", budget=20, run_dir=str(quiet)), progress=False,
               log=lambda m: None, report=False)
    assert not (quiet / "report.html").exists()


def test_a_comparison_shares_one_reference_point(tmp_path):
    from edgenas.search.pareto import hypervolume

    a, b = tabular(tmp_path, "a"), tabular(tmp_path, "b", strategy="random", problem="nb201:cifar100:pixel2")
    page = build_comparison([a, b], tmp_path / "c.html").read_text()
    assert "a (lemonade)" in page and "b (random)" in page and not NETWORK.search(page)
    reference = np.maximum(*[load_run(r)[0]["reference_point"] for r in (a, b)]).tolist()
    for r in (a, b):
        _, evaluations, objectives = load_run(r)
        hv = hypervolume(pareto_front(evaluations, objectives), objectives, reference)
        assert f"<td>{hv:.4g}</td>" in page
    with pytest.raises(SearchError, match="at least two"):
        build_comparison([a], tmp_path / "d.html")


def test_runs_with_other_objectives_are_not_compared(tmp_path, trained):
    with pytest.raises(SearchError, match="must share their objectives"):
        build_comparison([tabular(tmp_path, "a"), trained[0]], tmp_path / "c.html")


def test_report_cli(tmp_path, capsys):
    run = tabular(tmp_path, "r")
    assert main(["report", str(run), "--out", str(tmp_path / "x.html")]) == 0
    assert (tmp_path / "x.html").is_file() and "wrote" in capsys.readouterr().out
    for argv, message in [(["report", str(run), str(run)], "several runs need --compare"),
                          (["report", str(run), str(run), "--compare"], "--compare needs --out"),
                          (["report", str(tmp_path / "nothing")], "is not a search run"),
                          (["report", str(run), "--out", str(tmp_path / "no" / "such" / "x.html")], "cannot write"),
                          (["report", str(run), "--out", str(tmp_path)], "is a folder")]:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("edgenas: error:") and message in err and err.count("\n") == 1


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_headless_chromium_renders_the_report(trained, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium package)")
    from PIL import Image

    page = build_report(trained[0], out=tmp_path / "report.html", bundles=trained[1])
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1600",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-report-ready="1"' in body and "data-js-error" not in body  # the script ran to its end, no error
    broken = tmp_path / "broken.html"  # the check can fail: a script error is caught and marked
    broken.write_text(page.read_text().replace("document.body.setAttribute('data-report-ready', '1');", "nosuch();"))
    dom = subprocess.run(flags + ["--dump-dom", broken.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "data-js-error" in re.search(r"<body[^>]*>", dom).group(0)
    shot = tmp_path / "shot.png"
    subprocess.run(flags + [f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape[0] >= 1000 and pixels.std() > 10  # not blank: text, tables and charts drawn
    assert (pixels < 128).mean() > 0.005
