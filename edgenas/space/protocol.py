"""The search-space protocol that strategies, the archive and reports use.

Two implementations: :class:`edgenas.space.mbconv.SearchSpace` (chains of MBConv
blocks, trained networks, network morphisms) and
:class:`edgenas.space.nb201.CellSpace` (NAS-Bench-201 cells, a tabular benchmark).
A strategy only ever calls what is listed here, so it runs on both.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Space", "features"]


@runtime_checkable
class Space(Protocol):
    """An architecture space: genome bounds, encode/decode, sampling, moves and a string form.

    Architectures are immutable and hashable, ``str(arch)`` is their compact
    form and ``space.parse(str(arch)) == arch``.  ``supports_morphisms`` says
    whether architectures have weights that network morphisms can carry over
    (:mod:`edgenas.space.morphisms`).
    """

    name: str
    supports_morphisms: bool

    @property
    def free_genes(self) -> Sequence[Any]: ...  # each with ``.name`` and ``.choices``

    @property
    def n_var(self) -> int: ...

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]: ...  # inclusive integer bounds of the encoding

    @property
    def fingerprint(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...

    def n_architectures(self) -> int: ...

    def describe(self) -> Iterator[str]: ...

    def parse(self, text: str) -> Hashable: ...

    def contains(self, arch: Any) -> bool: ...

    def encode(self, arch: Any) -> np.ndarray: ...

    def decode(self, x: Sequence[int] | np.ndarray) -> Any: ...

    def canonical_encoding(self, X: np.ndarray) -> np.ndarray: ...  # equal architectures get equal rows

    def sample(self, rng: np.random.Generator) -> Any: ...

    def neighbors(self, arch: Any) -> list[Any]: ...  # every architecture one move away

    def mutate(self, arch: Any, rng: np.random.Generator) -> Any: ...


def features(space: Space, X: np.ndarray) -> np.ndarray:
    """Numeric features of encoded architectures for accuracy predictors: the space's own ``features`` where it has
    them, else a one-hot of each gene's choice."""
    own = getattr(space, "features", None)
    if own is not None:
        return own(X)
    X = np.atleast_2d(np.asarray(X, dtype=np.int64))
    _, xu = space.bounds
    return np.hstack([np.eye(int(u) + 1)[X[:, i]] for i, u in enumerate(xu)]) if len(xu) else np.zeros((len(X), 0))
