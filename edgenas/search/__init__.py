"""Layer 4, search: objectives and limits (objectives), the SQLite archive (archive), the Pareto front and its
hypervolume (pareto), executors, ask/tell strategies (strategies/), the settings of a search (config), what a search
is about (problems), accuracy sources (evaluators), run folders (runs), the loop (loop), the run report (report) and
the strategy contract suite (testing).

The library entry points are importable from here::

    from edgenas.search import SearchConfig, SearchRun, run_search, load_run
"""

from __future__ import annotations

import importlib

#: Public name -> the module of this package that defines it (imported on first use, so that importing a light
#: module such as ``edgenas.search.archive`` does not load torch).
_EXPORTS = {
    "SearchConfig": "config", "SearchRun": "loop", "SearchResult": "loop", "run_search": "loop",
    "load_run": "runs", "weights_path": "runs", "write_outputs": "runs", "pareto_front": "pareto",
    "hypervolume": "pareto",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
