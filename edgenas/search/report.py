"""A run report: one self-contained HTML page per run, and a comparison page of several runs.

``build_report(run_dir)`` writes ``report.html`` into the run folder: the
resolved settings, the device and its table (or the tabular benchmark), an
interactive front (every pair of objectives as an inline SVG scatter; hovering
or focusing a point shows its id, architecture, accuracy, objectives, strategy
and parent), the hypervolume against evaluations and against training
seconds, counts per strategy and status, a sortable table of every
evaluation with its status and reason, and, for exported members found in
``export/<run>/`` (or ``bundles``), predicted against measured latency and the
accuracy of every file.  ``build_comparison(runs, out)`` puts several runs'
fronts and hypervolume curves on shared axes, their hypervolumes recomputed
against one shared reference point.

Nothing is loaded from the network: the charts are SVG written here and the
script and styles are inline.  Colours are the Okabe-Ito palette (safe for
colour-blind readers) and the page follows the reader's light or dark scheme.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenas.errors import SearchError
from edgenas.files import atomic_write_text
from edgenas.search.archive import Archive, Evaluation, Status
from edgenas.search.objectives import Objective
from edgenas.search.pareto import pareto_front

__all__ = ["build_comparison", "build_report"]

#: Okabe-Ito: distinguishable with every common colour-vision deficiency.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
W, H, PAD = 360, 260, 58


@dataclass
class _Run:
    path: Path
    resolved: dict
    evaluations: list[Evaluation]
    objectives: list[Objective]
    history: list[dict]

    @property
    def front(self) -> list[Evaluation]:
        return pareto_front(self.evaluations, self.objectives)

    @property
    def reference(self) -> list[float] | None:
        return self.resolved.get("reference_point")


def _load(run_dir: str | Path) -> _Run:
    from edgenas.search.runs import load_run

    run_dir = Path(run_dir)
    resolved, evaluations, objectives = load_run(run_dir)
    with Archive(run_dir / "archive.sqlite", readonly=True) as archive:
        history = archive.hypervolume_history()
    return _Run(run_dir, resolved, evaluations, objectives, history)


# ------------------------------------------------------------------ formatting
def _fmt(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit else text


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _scale(values: Sequence[float], lo_px: float, hi_px: float):
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    span = hi - lo
    lo, hi = lo - 0.04 * span, hi + 0.04 * span
    return (lambda v: lo_px + (v - lo) / (hi - lo) * (hi_px - lo_px)), lo, hi


def _axes(xlabel: str, ylabel: str, xlo: float, xhi: float, ylo: float, yhi: float) -> str:
    parts = [f'<rect x="{PAD}" y="8" width="{W - PAD - 8}" height="{H - PAD - 8}" class="frame"/>']
    for k in range(5):
        fx, fy = xlo + (xhi - xlo) * k / 4, ylo + (yhi - ylo) * k / 4
        px = PAD + (W - PAD - 8) * k / 4
        py = H - PAD - (H - PAD - 8) * k / 4
        anchor = "end" if k == 4 else "middle"
        parts.append(f'<text x="{px:.1f}" y="{H - PAD + 14}" class="tick" text-anchor="{anchor}">{fx:.4g}</text>')
        parts.append(f'<text x="{PAD - 4}" y="{py + 3:.1f}" class="tick" text-anchor="end">{fy:.4g}</text>')
    parts.append(f'<text x="{(PAD + W) / 2:.0f}" y="{H - 8}" class="label" text-anchor="middle">{_esc(xlabel)}</text>')
    parts.append(f'<text x="12" y="{(H - PAD) / 2:.0f}" class="label" text-anchor="middle" '
                 f'transform="rotate(-90 12 {(H - PAD) / 2:.0f})">{_esc(ylabel)}</text>')
    return "".join(parts)


def _label(o: Objective) -> str:
    return f"{o.value} ({o.unit})"


# ---------------------------------------------------------------------- charts
def _point_info(e: Evaluation, objectives: Sequence[Objective], run: str = "") -> str:
    info = {"run": run, "id": e.id, "arch": e.arch, "status": e.status,
            "accuracy": None if e.accuracy is None else f"{100 * e.accuracy:.2f} %",
            **{_label(o): _fmt(e.objectives.get(o.value)) for o in objectives}, "strategy": e.strategy,
            "parent": e.parent or "-"}
    return _esc(json.dumps({k: v for k, v in info.items() if v not in ("", None)}))


def _scatter(series: list[tuple[str, str, list[Evaluation], bool]], x: Objective, y: Objective,
             objectives: Sequence[Objective]) -> str:
    """One SVG scatter: ``series`` of (name, colour, evaluations, is_front).  A front is joined by a line only with two
    objectives (a projection of a larger front is no staircase)."""
    xs = [e.objectives[x.value] for _, _, evs, _ in series for e in evs]
    ys = [e.objectives[y.value] for _, _, evs, _ in series for e in evs]
    sx, xlo, xhi = _scale(xs, PAD, W - 8)
    sy, ylo, yhi = _scale(ys, H - PAD, 8)
    marks = []
    for name, colour, evs, is_front in series:
        if is_front and len(evs) > 1 and len(objectives) == 2:
            pts = sorted(evs, key=lambda e: e.objectives[x.value])
            path = " ".join(f"{sx(e.objectives[x.value]):.1f},{sy(e.objectives[y.value]):.1f}" for e in pts)
            marks.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.2" opacity="0.6"/>')
        for e in evs:
            r = 4.5 if is_front else 2.6
            cls = "pt front" if is_front else "pt"
            marks.append(f'<circle cx="{sx(e.objectives[x.value]):.1f}" cy="{sy(e.objectives[y.value]):.1f}" r="{r}" '
                         f'fill="{colour}" class="{cls}" tabindex="0" data-info="{_point_info(e, objectives, name)}"/>')
    return (f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{_esc(_label(y))} against {_esc(_label(x))}">'
            f'{_axes(_label(x), _label(y), xlo, xhi, ylo, yhi)}{"".join(marks)}</svg>')


def _lines(curves: list[tuple[str, str, list[tuple[float, float]]]], xlabel: str, ylabel: str) -> str:
    xs = [p[0] for _, _, c in curves for p in c] or [0.0, 1.0]
    ys = [p[1] for _, _, c in curves for p in c] or [0.0, 1.0]
    sx, xlo, xhi = _scale(xs, PAD, W - 8)
    sy, ylo, yhi = _scale(ys, H - PAD, 8)
    marks = []
    for name, colour, c in curves:
        if c:
            path = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in c)
            marks.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
                         f'<title>{_esc(name)}</title></polyline>')
    return (f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{_esc(ylabel)} against {_esc(xlabel)}">'
            f'{_axes(xlabel, ylabel, xlo, xhi, ylo, yhi)}{"".join(marks)}</svg>')


def _legend(items: list[tuple[str, str]]) -> str:
    return '<p class="legend">' + " ".join(
        f'<span><svg width="12" height="12"><circle cx="6" cy="6" r="5" fill="{c}"/></svg> {_esc(n)}</span>'
        for n, c in items) + "</p>"


def _pairs(objectives: Sequence[Objective]) -> list[tuple[Objective, Objective]]:
    """Error against each other objective first, then the other pairs (x, y)."""
    pairs = [(o, objectives[0]) for o in objectives[1:]]
    rest = objectives[1:]
    return pairs + [(rest[j], rest[i]) for i in range(len(rest)) for j in range(i + 1, len(rest))]


# ---------------------------------------------------------------------- tables
def _table(columns: Sequence[str], rows: Sequence[Sequence], sortable: bool = False, cls: str = "") -> str:
    head = "".join(f'<th scope="col"{" tabindex=0" if sortable else ""}>{_esc(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_esc(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return (f'<table class="{"sortable " if sortable else ""}{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


#: Settings a tabular benchmark search does not use (it trains nothing, on no device).
TRAINING_ONLY = {"data", "space", "resolution", "device", "precision", "table", "epochs", "finetune_epochs",
                 "min_steps", "batch_size", "augment", "optimizer", "lr", "label_smoothing", "val_fraction",
                 "drift_check", "workers"}


def _settings_rows(run: _Run) -> list[tuple[str, object]]:
    config = run.resolved.get("config", {})
    skip = TRAINING_ONLY if config.get("problem") else set()
    return [(k, json.dumps(v) if isinstance(v, list | dict) else v) for k, v in config.items()
            if v is not None and k not in skip]


def _device_section(run: _Run) -> str:
    r = run.resolved
    if "problem" in r:
        p = r["problem"]
        return (f"<h2>Tabular benchmark</h2><p>{_esc(p.get('name'))}: every evaluation is a lookup of the cell's "
                f"test error on {_esc(p.get('dataset'))} and its latency on {_esc(p.get('device'))}, from "
                f"<code>{_esc(Path(str(p.get('data'))).name)}</code> (sha256 {_esc(str(p.get('sha256'))[:12])}).</p>")
    device = r.get("device", {})
    rows = [(k, json.dumps(v) if isinstance(v, list | dict) else v) for k, v in device.items()]
    table_path = r.get("table")
    info = _table_info(table_path)
    drift = r.get("drift")
    rows += [("table", table_path), *info]
    if drift:
        rows.append(("drift at search start", f"speed x{drift.get('speed_ratio', float('nan')):.3g}, latency scale "
                                              f"{drift.get('latency_scale', float('nan')):.4g}"))
    return "<h2>Device and latency table</h2>" + _table(("field", "value"), rows)


def _table_info(path) -> list[tuple[str, object]]:
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError, TypeError):
        return [("table file", "not readable here")]
    runtime = table.get("runtime", {})
    calibration = table.get("calibration", {})
    return [("profiled", table.get("created")), ("runtime", f"{runtime.get('name')} {runtime.get('version')}, "
                                                            f"{runtime.get('threads')} thread(s)"),
            ("precision", table.get("precision")), ("ops in table", len(table.get("entries", {}))),
            ("calibration", f"scale {calibration.get('latency_scale', float('nan')):.4g}, overhead "
                            f"{1000 * calibration.get('overhead_ms', float('nan')):.3g} us, "
                            f"{len(calibration.get('history', []))} earlier calibration(s)")]


def _evaluation_rows(run: _Run) -> list[list]:
    front_ids = {e.id for e in run.front}
    rows = []
    for e in run.evaluations:
        rows.append([e.id, "yes" if e.id in front_ids else "", e.status, e.reason or ("at chance" if e.at_chance else ""),
                     None if e.accuracy is None else round(100 * e.accuracy, 3),
                     *[e.objectives.get(o.value) for o in run.objectives[1:]], e.epochs, round(e.train_seconds, 2),
                     e.strategy, e.parent or "", e.arch])
    return rows


def _bundles_section(run: _Run, bundles: Path | None) -> str:
    folder = bundles if bundles is not None else Path("export") / run.path.resolve().name
    metas = []
    for meta_path in sorted(folder.glob("member-*/metadata.json")) if folder.is_dir() else []:
        try:
            metas.append(json.loads(meta_path.read_text()))
        except (OSError, ValueError):
            continue
    if not metas:
        return (f"<h2>Exported members</h2><p>No bundles found in <code>{_esc(folder)}</code> (export some with "
                f"<code>edgenas export {_esc(run.path)}</code>).</p>")
    rows = []
    for m in metas:
        for f in m.get("verification", []):
            rows.append([m.get("member"), f.get("file"), None if f.get("accuracy") is None else
                         round(100 * f["accuracy"], 2), f.get("latency_ms"), f.get("predicted_latency_ms"),
                         m.get("status"), m.get("architecture")])
    return ("<h2>Exported members</h2>" + _table(
        ("member", "file", "accuracy (%)", "measured latency (ms)", "predicted latency (ms)", "status", "architecture"),
        rows))


# ------------------------------------------------------------------------ page
STYLE = """
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #ffffff; --muted: #666; --line: #c8c8c8; --grey: #9a9a9a; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8e8; --bg: #16181d; --muted: #a0a0a0; --line: #4a4a4a;
  --grey: #8a8a8a; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 1.5em auto;
  max-width: 1180px; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid var(--line); }
code { font-size: 0.92em; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; } .charts svg { width: 360px; height: 260px; }
svg .frame { fill: none; stroke: var(--line); } svg .tick { font-size: 9px; fill: var(--muted); }
svg .label { font-size: 11px; fill: var(--fg); } svg .pt { cursor: pointer; } svg .pt.front { stroke: var(--bg); }
svg .pt:focus, svg .pt:hover { stroke: var(--fg); stroke-width: 2; outline: none; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 12.5px; }
th, td { border: 1px solid var(--line); padding: 2px 6px; text-align: left; vertical-align: top; }
table.sortable th { cursor: pointer; } th[aria-sort] { text-decoration: underline; }
.scroll { max-height: 520px; overflow: auto; } .legend span { margin-right: 1.2em; }
#tip { position: fixed; pointer-events: none; background: var(--bg); color: var(--fg); border: 1px solid var(--fg);
  padding: 6px 8px; font-size: 12px; max-width: 520px; display: none; white-space: pre-wrap; word-break: break-all; }
.muted { color: var(--muted); }
"""

SCRIPT = """
window.addEventListener('error', function (e) { document.body.setAttribute('data-js-error', String(e.message)); });
(function () {
  var tip = document.getElementById('tip');
  function show(el, x, y) {
    var info = JSON.parse(el.getAttribute('data-info'));
    tip.textContent = Object.keys(info).map(function (k) { return k + ': ' + info[k]; }).join('\\n');
    tip.style.left = Math.min(x + 14, window.innerWidth - 540) + 'px'; tip.style.top = (y + 14) + 'px';
    tip.style.display = 'block';
  }
  document.querySelectorAll('.pt').forEach(function (el) {
    el.addEventListener('mousemove', function (ev) { show(el, ev.clientX, ev.clientY); });
    el.addEventListener('focus', function () { var r = el.getBoundingClientRect(); show(el, r.left, r.top); });
    el.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
    el.addEventListener('blur', function () { tip.style.display = 'none'; });
  });
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('th').forEach(function (th, col) {
      function sort() {
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var up = th.getAttribute('aria-sort') !== 'ascending';
        table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', up ? 'ascending' : 'descending');
        rows.sort(function (a, b) {
          var x = a.cells[col].textContent, y = b.cells[col].textContent, nx = parseFloat(x), ny = parseFloat(y);
          var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return up ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      }
      th.addEventListener('click', sort);
      th.addEventListener('keydown', function (ev) { if (ev.key === 'Enter') { sort(); } });
    });
  });
  document.body.setAttribute('data-report-ready', '1');
})();
"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_esc(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}<div id=\"tip\" role=\"tooltip\"></div>"
            f"<script>{SCRIPT}</script></body></html>")


def _front_charts(run: _Run) -> str:
    front = run.front
    on_front = {e.id for e in front}
    ok = [e for e in run.evaluations if e.status == Status.OK and e.id not in on_front]
    series = [("evaluated", "#9a9a9a", ok, False),
              ("Pareto front", PALETTE[0], front, True)]
    charts = "".join(_scatter(series, x, y, run.objectives) for x, y in _pairs(run.objectives))
    return _legend([("evaluated", "#9a9a9a"), ("Pareto front", PALETTE[0])]) + f'<div class="charts">{charts}</div>'


def _history_charts(curves: list[tuple[str, str, list[dict]]]) -> str:
    by_evals = [(n, c, [(h["evaluations"], h["hypervolume"]) for h in hist]) for n, c, hist in curves]
    by_time = [(n, c, [(h["train_seconds"], h["hypervolume"]) for h in hist]) for n, c, hist in curves]
    trained = any(t > 0 for _, _, pts in by_time for t, _ in pts)
    return ('<div class="charts">' + _lines(by_evals, "evaluations", "hypervolume")
            + (_lines(by_time, "training time (s)", "hypervolume") if trained else
               "<p class='muted'>No training time: every evaluation was a lookup.</p>") + "</div>")


def build_report(run_dir: str | Path, out: str | Path | None = None, bundles: str | Path | None = None) -> Path:
    """Write the run's report (default ``RUN/report.html``); returns its path.  See the module docstring."""
    run = _load(run_dir)
    front = run.front
    counts = Counter((e.strategy or "-", e.status) for e in run.evaluations)
    strategies = sorted({s for s, _ in counts})
    statuses = tuple(s.value for s in Status)
    chance = sum(1 for e in run.evaluations if e.at_chance)
    columns = ("id", "front", "status", "reason", "accuracy (%)", *[_label(o) for o in run.objectives[1:]], "epochs",
               "train s", "strategy", "parent", "architecture")
    hv = run.history[-1]["hypervolume"] if run.history else 0.0
    body = [
        f"<h1>edgenas run <code>{_esc(run.path.name)}</code></h1>",
        f'<p>{len(run.evaluations)} evaluations, front of {len(front)}, hypervolume {_fmt(float(hv))} against the '
        f"reference point {_esc(_fmt_point(run.reference, run.objectives))}. Refreshed while "
        f'<code>edgenas search</code> runs; made by edgenas {_esc(run.resolved.get("edgenas", ""))}.</p>',
        "<h2>Pareto front</h2><p class='muted'>Hover or focus (Tab) a point for its architecture.</p>",
        _front_charts(run),
        "<h3>Front members</h3>",
        _table(("id", "accuracy (%)", *[_label(o) for o in run.objectives[1:]], "strategy", "parent", "architecture"),
               [[e.id, None if e.accuracy is None else round(100 * e.accuracy, 3),
                 *[e.objectives.get(o.value) for o in run.objectives[1:]], e.strategy, e.parent or "", e.arch]
                for e in front], sortable=True),
        "<h2>Hypervolume</h2>", _history_charts([("this run", PALETTE[0], run.history)]),
        "<h2>Evaluations per strategy</h2>",
        _table(("strategy", *statuses), [[s, *[counts.get((s, st), 0) for st in statuses]] for s in strategies])
        + (f"<p>{chance} trained network(s) scored at chance.</p>" if chance else ""),
        _device_section(run),
        _bundles_section(run, Path(bundles) if bundles else None),
        "<h2>Settings</h2>", _table(("setting", "value"), _settings_rows(run)),
        f"<h2>Every evaluation ({len(run.evaluations)})</h2><p class='muted'>Click a column to sort.</p>",
        f'<div class="scroll">{_table(columns, _evaluation_rows(run), sortable=True)}</div>',
    ]
    return _write(Path(out) if out else run.path / "report.html", _page(f"edgenas run {run.path.name}", "".join(body)))


def _write(path: Path, page: str) -> Path:
    if path.is_dir():
        raise SearchError(f"--out {path} is a folder; give a file name, e.g. {path / 'report.html'}")
    try:
        atomic_write_text(path, page)
    except OSError as exc:
        raise SearchError(f"cannot write the report to {path}: {exc.strerror or exc}; choose another --out") from None
    return path


def _fmt_point(point, objectives) -> str:
    if not point:
        return "-"
    return "(" + ", ".join(f"{_fmt(float(v))} {o.unit}" for v, o in zip(point, objectives)) + ")"


def build_comparison(run_dirs: Sequence[str | Path], out: str | Path) -> Path:
    """Fronts and hypervolume curves of several runs on shared axes (same objectives required); every run's
    hypervolume is recomputed against one shared reference point, the element-wise maximum of theirs."""
    from edgenas.search.pareto import hypervolume

    if len(run_dirs) < 2:
        raise SearchError("--compare needs at least two run folders")
    runs = [_load(r) for r in run_dirs]
    objectives = runs[0].objectives
    for r in runs[1:]:
        if r.objectives != objectives:
            raise SearchError(f"{r.path} has objectives {','.join(o.value for o in r.objectives)}, {runs[0].path} "
                              f"{','.join(o.value for o in objectives)}: runs compared must share their objectives")
    references = [r.reference for r in runs if r.reference]
    reference = np.max(references, axis=0).tolist() if len(references) == len(runs) else None
    if reference is None:
        raise SearchError("a run has no reference point in its config.json; it cannot be compared")
    curves, rows, series = [], [], []
    for k, r in enumerate(runs):
        colour = PALETTE[k % len(PALETTE)]
        name = f"{r.path.name} ({r.resolved.get('config', {}).get('strategy', '?')})"
        hist = []  # at the run's own history points (each generation), against the shared reference
        for h in r.history:
            n = int(h["evaluations"])
            hist.append({"evaluations": n, "train_seconds": h["train_seconds"],
                         "hypervolume": hypervolume(pareto_front(r.evaluations[:n], objectives), objectives, reference)})
        curves.append((name, colour, hist))
        series.append((name, colour, r.front, True))
        rows.append([name, len(r.evaluations), len(r.front), hist[-1]["hypervolume"] if hist else 0.0])
    charts = "".join(_scatter(series, x, y, objectives) for x, y in _pairs(objectives))
    body = [f"<h1>edgenas: {len(runs)} runs compared</h1>",
            f"<p>Hypervolumes recomputed against the shared reference point "
            f"{_esc(_fmt_point(reference, objectives))}.</p>",
            _table(("run", "evaluations", "front", "hypervolume"), rows, sortable=True),
            "<h2>Pareto fronts</h2>", _legend([(n, c) for n, c, _, _ in series]), f'<div class="charts">{charts}</div>',
            "<h2>Hypervolume</h2>", _legend([(n, c) for n, c, _ in curves]), _history_charts(curves)]
    return _write(Path(out), _page("edgenas comparison", "".join(body)))
