"""`StudyAwareBatchSampler`: every image of a study in one batch, studies split across DDP ranks.

Per epoch (``set_epoch``), with the same ``seed`` on every rank:

1. the studies are shuffled with ``numpy.random.default_rng(seed + epoch)`` (or kept in order);
2. they are dealt to the ranks greedily -- each study to the rank with the fewest images so far -- so
   the ranks' study sets are **disjoint and together complete** and their image counts balanced;
3. each rank packs its studies, in order, into batches of at most ``batch_size`` images, never
   splitting a study (a study larger than ``batch_size`` is a batch of its own);
4. ``even_batches=True`` (default): ranks with fewer batches repeat their own first batches until every
   rank has the same number, so DDP's collective calls never wait on a finished rank. Repeats come
   from the rank's own studies, so the sets stay disjoint; set ``even_batches=False`` to see each
   image exactly once.

``num_replicas`` / ``rank`` default to ``torch.distributed``'s world when it is initialized, else 1 / 0.

Example:
    >>> sampler = StudyAwareBatchSampler(["a", "a", "b", "c", "c", "c"], batch_size=4, seed=0)
    >>> batches = list(sampler)
    >>> sorted(i for b in batches for i in b), all(len(b) <= 4 for b in batches)
    ([0, 1, 2, 3, 4, 5], True)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

__all__ = ["StudyAwareBatchSampler"]


def _world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    import torch.distributed as dist

    ready = dist.is_available() and dist.is_initialized()
    n = num_replicas if num_replicas is not None else (dist.get_world_size() if ready else 1)
    r = rank if rank is not None else (dist.get_rank() if ready else 0)
    if n < 1 or not 0 <= r < n:
        raise ValueError(f"rank must be in [0, num_replicas), got rank={r}, num_replicas={n}")
    return int(n), int(r)


class StudyAwareBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices grouped by study (module doc).

    ``dataset`` is anything with a ``studies`` list (one study name per index, like
    :class:`~ctlens.data.image_dataset.ImageDataset`) or that list itself.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        *,
        even_batches: bool = True,
    ) -> None:
        studies: Sequence[str] = dataset.studies if hasattr(dataset, "studies") else dataset
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.groups: dict[str, list[int]] = {}
        for index, study in enumerate(studies):
            self.groups.setdefault(str(study), []).append(index)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas, self.rank = _world(num_replicas, rank)
        if len(self.groups) < self.num_replicas:
            raise ValueError(
                f"{len(self.groups)} studies cannot be split over {self.num_replicas} ranks (each needs at least one)"
            )
        self.even_batches = even_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of ``epoch`` (call it on every rank before each epoch, like DistributedSampler)."""
        self.epoch = int(epoch)

    def rank_studies(self, rank: int | None = None) -> list[str]:
        """The studies of ``rank`` (default: this rank) in this epoch, in batch order."""
        return self._deal()[self.rank if rank is None else rank]

    def _deal(self) -> list[list[str]]:
        names = list(self.groups)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(len(names))
            names = [names[i] for i in order]
        dealt: list[list[str]] = [[] for _ in range(self.num_replicas)]
        load = [0] * self.num_replicas
        for name in names:
            r = min(range(self.num_replicas), key=lambda k: (load[k], k))
            dealt[r].append(name)
            load[r] += len(self.groups[name])
        return dealt

    def _pack(self, studies: list[str]) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        for name in studies:
            members = self.groups[name]
            if current and len(current) + len(members) > self.batch_size:
                batches.append(current)
                current = []
            current = current + members
        if current:
            batches.append(current)
        return batches

    def _batches(self) -> list[list[int]]:
        dealt = self._deal()
        mine = self._pack(dealt[self.rank])
        if self.even_batches:
            target = max(len(self._pack(s)) for s in dealt)
            mine = mine + [mine[i % len(mine)] for i in range(target - len(mine))]
        return mine

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
