"""The search loop: strategies ask, candidates are evaluated (or rejected early), the front grows.

:class:`SearchRun` is one search, driven a generation at a time (``run_search(config)`` drives it to the end):

1. the strategy asks for a batch of candidates;
2. each is looked up in the run's archive (finished work is never redone),
   checked against the hard limits from its cheap objectives (a violating
   candidate is recorded as infeasible and costs no training), or evaluated
   by the run's accuracy source (:mod:`edgenas.search.evaluators`);
3. the evaluations are told back to the strategy in ask order; the front,
   its hypervolume and the output files are updated (:mod:`edgenas.search.runs`).

What the search is about (data, space, device, table or benchmark) is built by
:mod:`edgenas.search.problems` before the run folder is touched.  ``resume=True``
continues a killed run: strategies are deterministic given their evaluations, so
replaying them against the archive brings them back to where they stopped
without training anything twice.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgenas.errors import SearchError
from edgenas.logs import stderr_log
from edgenas.search.archive import Archive, Evaluation, Status
from edgenas.search.config import SearchConfig
from edgenas.search.evaluators import Evaluator
from edgenas.search.objectives import Constraints, Objective
from edgenas.search.pareto import hypervolume, pareto_front
from edgenas.search.problems import check_limits_meetable, reference_point, setup_search
from edgenas.search.runs import check_run_dir, lock_run_dir, record_start, write_outputs
from edgenas.search.strategies import SearchProblem, get_strategy
from edgenas.search.strategies.base import WORST_ERROR_PCT

__all__ = ["SearchResult", "SearchRun", "run_search"]


@dataclass
class SearchResult:
    run_dir: Path
    front: list[Evaluation]
    hypervolume: float
    evaluations: int
    trained: int
    seconds: float
    notes: list[str] = field(default_factory=list)


#: report.html is refreshed after a generation at most this often while a search runs (and always at its end).
REPORT_INTERVAL_S = 5.0


#: Generations in a row that may pass without a new evaluation, or without a network trained, before a search stops.
MAX_IDLE_GENERATIONS = 3


MAX_UNTRAINED_GENERATIONS = 20


def run_search(
    config: SearchConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = stderr_log,
    report: bool = True,
) -> SearchResult:
    """Run (or resume) a search to its end; see the module docstring.  ``report`` refreshes ``report.html`` in the
    run folder after generations (:mod:`edgenas.search.report`)."""
    run = SearchRun(config, resume=resume, progress=progress, log=log, report=report)
    with run:
        while run.step():
            pass
        if run.config.supernet and run.config.finetune_front:
            run.finetune_front(run.config.finetune_front)
    return run.result


class SearchRun:
    """One search, driven a generation at a time::

        run = SearchRun(config)      # settings validated, problem and strategy built; no file touched yet
        with run:                    # run folder locked, archive opened, config.json written
            while run.step():        # one generation: ask, triage, evaluate, tell, outputs
                print(run.generation, run.archive.totals())
        run.result                   # the SearchResult (front, hypervolume, notes), also written to the folder

    A refused setting raises :class:`SearchError` from the constructor and leaves nothing behind.  Leaving the
    ``with`` block (also by an exception or Ctrl-C) writes the final outputs and releases the folder.
    """

    def __init__(self, config: SearchConfig, *, resume: bool = False, progress: bool = True,
                 log: Callable[[str], None] = stderr_log, report: bool = True) -> None:
        self.config = config = config.resolved()
        self.objectives, self.constraints, precision = config.validate()
        self.resume, self.progress, self.log, self.report = resume, progress, log, report
        self.run_dir = check_run_dir(config, resume)
        self.archive_path = self.run_dir / "archive.sqlite"
        resumed_archive = self.archive_path if resume else None
        self.setup = setup_search(config, self.objectives, self.constraints, precision, resumed_archive, log)
        self.reference = reference_point(self.setup.hardware, self.objectives, config.seed)
        check_limits_meetable(self.setup.hardware, self.constraints, config.seed)
        problem = SearchProblem(self.setup.space, self.objectives, self.setup.hardware, batch_size=config.population)
        self.strategy = get_strategy(config.strategy, config.strategy_settings())
        if config.mode == "steady" and not self.strategy.steady_state:
            raise SearchError(f"--mode steady: strategy {config.strategy} has no steady-state mode (lemonade, nsga2, "
                              "rl and random have); use --mode generational")
        self.strategy.setup(problem, config.seed)
        for note in self.strategy.notes:
            log(note)
        self.archive: Archive | None = None
        self.result: SearchResult | None = None
        self.generation = 0
        self.notes: list[str] = []
        self._lock = self._bar = None
        self._done = False
        self._idle = self._untrained = 0
        self._reported = -float("inf")  # when report.html was last refreshed
        self._told: set[str] = set()  # candidates told to the strategy in this session (a resume replays the others)
        # Steady-state mode: jobs asked and not yet submitted, architectures being evaluated (with the candidates that
        # wait for the same one), evaluations finished in this session.
        self._queue: deque = deque()
        self._waiting: dict[str, list] = {}
        self._violations: dict[str, np.ndarray] = {}
        self._finished = 0

    # ------------------------------------------------------------ lifetime
    def open(self) -> SearchRun:
        """Lock the run folder, open its archive, record the run's settings and start the accuracy source."""
        if self.archive is not None or self.result is not None:
            raise SearchError(f"search run {self.run_dir} was opened already; make a new SearchRun to search again")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_run_dir(self.run_dir)
        try:
            if not self.resume and self.archive_path.exists():  # another search created it since the checks
                raise SearchError(f"{self.run_dir} already holds a run: add --resume to continue it, or choose another "
                                  "--run-dir")
            self.archive = Archive(self.archive_path)
            record_start(self.config, self.resume, self.run_dir, self.archive, self.setup, self.objectives,
                         self.reference)
            if self.report:
                self.log(f"report, refreshed while the search runs: {self.run_dir / 'report.html'}")
            self.setup.evaluator.open(self.run_dir)
        except BaseException:
            if self.archive is not None:
                self.archive.close()
                self.archive = None
            self._lock.close()
            raise
        self._started = time.monotonic()
        self._elapsed_before = float(self.archive.get_meta("elapsed_seconds", 0.0))
        if self.progress:
            self._bar = _progress_bar(self.config.budget, self.archive, self.setup.unit)
        return self

    def __enter__(self) -> SearchRun:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def elapsed(self) -> float:
        """Seconds searched, over every session of this run."""
        return self._elapsed_before + time.monotonic() - self._started

    def _stop(self, note: str | None = None) -> bool:
        if note:
            self.notes.append(note)
        self._done = True
        return False

    # ---------------------------------------------------------- generation
    def step(self) -> bool:
        """One generation (in steady-state mode: one finished evaluation).  Returns False once the search has ended
        (budget, time budget, or no progress possible; the reason is in :attr:`notes`), True while another step may
        follow."""
        if self.archive is None:
            raise SearchError("open the search run first: with SearchRun(config) as run: run.step()")
        config, archive, strategy = self.config, self.archive, self.strategy
        if self._done:
            return False
        stalled = _stall_note(self._idle, self._untrained, self.setup.space, archive)
        if stalled:
            return self._stop(stalled)
        before = archive.totals()
        if config.mode == "steady":
            return self._steady_step(before)
        if before["trained"] >= config.budget:
            return self._stop()
        deadline, out_of_time = self._deadline()
        if deadline is not None and time.monotonic() >= deadline:
            return self._stop(out_of_time)
        candidates = strategy.ask()
        evaluations, jobs, known, G = _triage(candidates, archive, self.setup.hardware, self.constraints,
                                              strategy.name)
        jobs = jobs[:config.budget - before["trained"]]  # a budget ending inside this batch: what it allows, then stop
        fresh, late = _evaluate(self.setup.evaluator, jobs, archive, evaluations, G, strategy.name, self._bar,
                                deadline)
        if late:
            return self._stop(out_of_time)
        self.generation += 1
        self._count_progress(candidates, known, before, fresh)
        if any(e is None for e in evaluations):
            return self._stop()  # budget reached mid-batch: the strategy is not told a partial batch
        strategy.tell(candidates, evaluations)
        self._write_generation()
        return True

    def _deadline(self) -> tuple[float | None, str]:
        """The time budget as a deadline on the monotonic clock (the minutes of earlier sessions count), and the note
        of a run it stops."""
        minutes = self.config.time_budget_min
        if minutes is None:
            return None, ""
        return self._started - self._elapsed_before + 60 * minutes, f"stopped by the time budget of {minutes:g} min"

    # ----------------------------------------------------- steady state
    def _steady_step(self, before: dict) -> bool:
        """Steady-state mode: keep every worker busy (a freed worker gets the next candidate at once), then take the
        next finished evaluation, record it and tell it to the strategy.  Candidates the archive holds, or that break
        a hard limit, are told at once; one asked while the same architecture is being evaluated waits for it."""
        evaluator, archive = self.setup.evaluator, self.archive
        deadline, out_of_time = self._deadline()
        if deadline is not None and time.monotonic() >= deadline:
            return self._stop(out_of_time)
        while evaluator.pending < evaluator.slots and before["trained"] + evaluator.pending < self.config.budget:
            if not self._steady_fill():
                break
            stalled = _stall_note(self._idle, self._untrained, self.setup.space, archive)
            if stalled:
                return self._stop(stalled)
        if not evaluator.pending:
            if before["trained"] >= self.config.budget:
                return self._stop()
            if not self.strategy.can_ask() and not self._queue:
                return self._stop(f"stopped: {self.strategy.name} waits for results, but none is being evaluated")
            return True  # asks served from the archive or infeasible: counted towards the stall limits
        job, r = evaluator.wait()
        evaluation = _record(archive, job, r, self._violations.pop(job[1]), self.strategy.name)
        if self._bar is not None:
            self._bar.update(1)
        self._steady_tell(job[3], evaluation)
        self._finished += 1
        if self._finished % self.config.population == 0:
            self.generation += 1
            self._write_generation()
        return True

    def _steady_fill(self) -> bool:
        """Submit the next candidate to a free worker (asking the strategy when its buffer is empty).  Returns False
        when nothing can be submitted now (the strategy waits for results, or proposed nothing new)."""
        strategy, archive, evaluator = self.strategy, self.archive, self.setup.evaluator
        while not self._queue:
            if not strategy.can_ask():
                return False
            first = not self._told and not self._waiting
            free = max(1, evaluator.slots - evaluator.pending)
            candidates = strategy.ask(None if first else free)  # the first ask: a whole generation, spread out
            evaluations, jobs, known, G = _triage(candidates, archive, self.setup.hardware, self.constraints,
                                                  strategy.name)
            new = [j for j in jobs if j[1] not in self._waiting]
            replayed = any(t not in self._told for t in known)  # served from an earlier session of the run
            self._idle = 0 if new or any(str(c.arch) not in self._told for c in candidates) else self._idle + 1
            self._untrained = 0 if new or replayed else self._untrained + 1
            for cand, ev in zip(candidates, evaluations):  # served from the archive, or infeasible: told now
                if ev is not None:
                    self._steady_tell(cand, ev)
            for job in jobs:
                if job[1] in self._waiting:  # the same architecture is being evaluated: told with it
                    self._waiting[job[1]].append(job[3])
                else:
                    self._waiting[job[1]] = []
                    self._violations[job[1]] = G[job[0]]
                    self._queue.append(job)
            if not new:
                return False
        evaluator.submit(self._queue.popleft(), archive)
        return True

    def _steady_tell(self, cand, evaluation: Evaluation) -> None:
        self._told.add(evaluation.arch)
        waiting = self._waiting.pop(evaluation.arch, [])
        self.strategy.tell([cand, *waiting], [evaluation] * (1 + len(waiting)))

    def _count_progress(self, candidates, known: set[str], before: dict, fresh: Sequence[Evaluation]) -> None:
        """Generations without anything new, or without training, counted (a search that cannot progress stops)."""
        texts = [str(c.arch) for c in candidates]
        replayed = any(t in known and t not in self._told for t in texts)  # served from an earlier session
        self._idle = self._idle + 1 if all(t in self._told for t in texts) else 0
        trained_now = self.archive.totals()["trained"] > before["trained"]
        self._untrained = self._untrained + 1 if not trained_now and not replayed else 0
        self._told.update(texts)
        ok = [e for e in fresh if e.status == Status.OK]
        if ok and all(e.at_chance for e in ok):
            self.log(f"generation {self.generation}: all {len(ok)} trained network(s) scored at chance "
                     f"({100 * self.setup.evaluator.majority_rate:.1f}% is the majority-class rate): train longer "
                     "(--min-steps, --epochs), raise --lr, or add data")

    def _write_generation(self) -> None:
        """The front, its hypervolume and the output files after a generation (report.html at most every
        REPORT_INTERVAL_S)."""
        archive = self.archive
        everything = archive.all()  # read once for the front, its hypervolume and the output files
        _record_front(archive, self.objectives, self.reference, everything)
        archive.set_meta("elapsed_seconds", self.elapsed())
        write_outputs(self.run_dir, archive, self.objectives, plot=False, evaluations=everything)
        if self.report and time.monotonic() - self._reported >= REPORT_INTERVAL_S:
            _refresh_report(self.run_dir, self.log)
            self._reported = time.monotonic()
        _show_progress(self._bar, archive, self.objectives)

    def finetune_front(self, epochs: int) -> list[tuple[str, float, float]]:
        """Fine-tune each member of the front from its supernet weights for ``epochs`` epochs with the run's recipe,
        and record the weights (export ships them).  The search's accuracy (the subnet's) stays what it measured;
        returns (architecture, supernet accuracy, fine-tuned accuracy) per member, also logged."""
        from dataclasses import replace

        from edgenas.nn.supernet import load_supernet
        from edgenas.nn.train import save_weights, train_candidate
        from edgenas.search.evaluators import _training_seed

        if self.archive is None:
            raise SearchError("open the search run first: with SearchRun(config) as run: run.finetune_front(n)")
        supernet = load_supernet(self.config.supernet, self.config.data)
        front = pareto_front(self.archive.all(), self.objectives)
        out = []
        for ev in front:
            arch = supernet.space.parse(ev.arch)
            train, val = supernet.data.train[arch.resolution], supernet.data.val[arch.resolution]
            budget = self.config.training_budget(len(train[1]))
            recipe = replace(self.config.train_config(os.cpu_count() or 1, budget,
                                                      supernet.net.in_channels), epochs=epochs)
            seed = _training_seed(ev.arch, self.config.seed)
            result = train_candidate(supernet.model(arch), train, val, recipe, seed)
            if result.status != "ok":
                self.log(f"fine-tuning {ev.arch} failed: {result.reason}")
                continue
            name = f"weights/finetuned-{ev.id}.safetensors"
            save_weights(result.state, self.run_dir / name)
            self.archive.set_weights(ev.id, name, result.train_seconds, epochs)
            self.log(f"fine-tuned {ev.arch} for {epochs} epoch(s): accuracy {100 * ev.accuracy:.2f}% (supernet) -> "
                     f"{100 * result.accuracy:.2f}%")
            out.append((ev.arch, ev.accuracy, result.accuracy))
        return out

    def close(self) -> SearchResult | None:
        """End the run: stop the accuracy source, write the final front, outputs and report, release the folder.
        Returns :attr:`result` (None if the run was never opened)."""
        if self.archive is None:
            return self.result
        archive, self.archive = self.archive, None
        try:
            self.setup.evaluator.close()
            if self._bar is not None:
                self._bar.close()
            archive.set_meta("elapsed_seconds", self.elapsed())
            try:
                result = _finish(self.run_dir, archive, self.objectives, self.reference, self.report, self.log)
                result.notes = self.notes + _summary_notes(archive.all(), result.front,
                                                           self.setup.evaluator.majority_rate)
                self.result = result
            finally:
                archive.close()
        finally:
            self._lock.close()  # releases the lock (the kernel also releases it if this process dies)
        return self.result


def _finish(run_dir: Path, archive: Archive, objectives, reference, report: bool, log) -> SearchResult:
    """The final front, its hypervolume (always recorded, also for a run shorter than one generation), the output
    files and the report."""
    hv = _record_front(archive, objectives, reference)
    front = write_outputs(run_dir, archive, objectives, plot=True)
    if report:
        _refresh_report(run_dir, log)
    totals = archive.totals()
    return SearchResult(run_dir, front, hv, totals["evaluations"], totals["trained"],
                        float(archive.get_meta("elapsed_seconds", 0.0)))


def _evaluate(evaluator: Evaluator, jobs, archive: Archive, evaluations: list, G: np.ndarray, strategy_name: str,
              bar, deadline: float | None) -> tuple[list[Evaluation], bool]:
    """Run the jobs, recording each evaluation as it finishes (a kill loses nothing done); fills ``evaluations``.
    The time budget (``deadline`` on the monotonic clock) is checked between evaluations: the rest of the batch is
    then not started.  Returns (the new evaluations, whether the deadline passed)."""
    fresh = []
    for job, r in evaluator.run(jobs, archive):
        i = job[0]
        evaluations[i] = _record(archive, job, r, G[i], strategy_name)
        fresh.append(evaluations[i])
        if bar is not None:
            bar.update(1)
        if deadline is not None and time.monotonic() >= deadline:
            return fresh, True
    return fresh, False


def _record(archive: Archive, job, r: dict, violations, strategy_name: str) -> Evaluation:
    """One finished job's evaluation, committed to the archive."""
    _, text, hw, cand = job
    error = WORST_ERROR_PCT if r["accuracy"] is None else 100.0 * (1.0 - r["accuracy"])
    return archive.add(Evaluation(
        text, r["status"], {**hw, "error": error}, accuracy=r["accuracy"],
        violations=tuple(float(g) for g in violations), train_seconds=r["train_seconds"], epochs=r["epochs"],
        seed=r["seed"], weights=r["weights"], reason=r["reason"], strategy=strategy_name,
        parent=cand.parent, steps=r["steps"], at_chance=r["at_chance"], attempts=r.get("attempts", 1),
        train_device=r.get("train_device", "")))


def _triage(candidates, archive: Archive, hardware, constraints: Constraints, strategy_name: str):
    """A batch sorted before any evaluation: finished work is served from the archive, a candidate that breaks a
    hard limit is recorded as infeasible (no training spent), the rest become jobs ``(i, text, hardware values,
    candidate)``.  Returns (evaluations with None for the jobs, jobs, the texts found in the archive, violations)."""
    X = np.stack([hardware.space.encode(c.arch) for c in candidates])
    cheap = hardware.evaluate(X)
    G = hardware.violations(cheap)
    evaluations: list[Evaluation | None] = [None] * len(candidates)
    jobs, known = [], set()
    for i, cand in enumerate(candidates):
        text = str(cand.arch)
        cached = archive.get(text)
        hw = {o.value: float(cheap[o][i]) for o in hardware.available}
        if cached is not None:
            known.add(text)
            evaluations[i] = cached
        elif G.shape[1] and np.any(G[i] > 0):
            broken = [f"{name.replace('_', '-')} {limit:g}" for (name, limit), g in zip(constraints.items(), G[i])
                      if g > 0]
            evaluations[i] = archive.add(Evaluation(
                text, Status.INFEASIBLE, {**hw, "error": WORST_ERROR_PCT}, violations=tuple(float(g) for g in G[i]),
                reason=f"exceeds --{', --'.join(broken)}", strategy=strategy_name, parent=cand.parent))
        else:
            jobs.append((i, text, hw, cand))
    return evaluations, jobs, known, G


def _stall_note(idle: int, untrained: int, space, archive: Archive) -> str | None:
    """Why a search that cannot make progress stops (None while it can)."""
    if idle >= MAX_IDLE_GENERATIONS:
        t = archive.totals()
        return (f"stopped: {idle} generations in a row proposed nothing new to evaluate; the space holds "
                f"{space.n_architectures():,} architectures and {t['evaluations']:,} were evaluated (the "
                "strategy has exhausted what it can reach)")
    if untrained >= MAX_UNTRAINED_GENERATIONS:
        return (f"stopped: {untrained} generations in a row trained nothing (every candidate broke a hard "
                "limit or was evaluated before); loosen the limits or use a smaller space")
    return None


def _progress_bar(budget: int, archive: Archive, unit: str):
    from tqdm import tqdm

    return tqdm(total=budget, initial=min(archive.totals()["trained"], budget), desc="search", unit=unit,
                file=sys.stderr, dynamic_ncols=True, disable=None)


def _show_progress(bar, archive: Archive, objectives) -> None:
    if bar is None:
        return
    history = archive.hypervolume_history()
    best = min((e.objectives["error"] for e in pareto_front(archive.all(), objectives)), default=float("nan"))
    bar.set_postfix_str(f"best error {best:.2f}%, front {history[-1]['front_size']}, HV {history[-1]['hypervolume']:.4g}")


def _refresh_report(run_dir: Path, log) -> None:
    """The run's report.html, rebuilt (a report that cannot be written is logged, and the search goes on)."""
    from edgenas.search.report import build_report

    try:
        build_report(run_dir)
    except (OSError, ValueError, SearchError) as exc:
        log(f"report.html not refreshed: {exc}")


def _record_front(archive: Archive, objectives: Sequence[Objective], reference: Sequence[float],
                  evaluations: Sequence[Evaluation] | None = None) -> float:
    """The hypervolume of the archive's front now, recorded in its history; returned."""
    front = pareto_front(archive.all() if evaluations is None else evaluations, objectives)
    hv = hypervolume(front, objectives, reference)
    archive.add_hypervolume(hv, len(front))
    return hv


def _summary_notes(evaluations: Sequence[Evaluation], front: Sequence[Evaluation], majority_rate: float) -> list[str]:
    """What the user should know about a finished run: failures, networks at chance, a front of one."""
    notes = []
    trained = [e for e in evaluations if e.trained]
    failed = sum(1 for e in trained if e.status == Status.FAILED)
    chance = sum(1 for e in trained if e.at_chance)
    if failed:
        notes.append(f"{failed} candidate(s) failed to train; see their reason in the archive")
    if chance:
        notes.append(f"{chance} of {len(trained)} trained network(s) scored at chance (the majority-class rate "
                     f"{100 * majority_rate:.1f}%, within a binomial margin)" + (
                         ": none learned; train longer (--min-steps, --epochs), raise --lr, or add data"
                         if chance == len(trained) else ""))
    if len(front) == 1 and len(trained) > 1:
        why = ("accuracy did not separate the networks (they are at chance), so the cheapest one wins on every "
               "objective" if chance >= len(trained) - 1 else
               "it is at least as good as every other network on every objective")
        notes.append(f"front of 1: {front[0].arch} dominates the other {len(evaluations) - 1} evaluation(s): {why}")
    return notes
