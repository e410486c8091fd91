"""StudyAwareBatchSampler: studies kept whole, disjoint and complete over a simulated 2-rank world."""

from __future__ import annotations

import numpy as np
import pytest

from ctlens.data.sampler import StudyAwareBatchSampler


def make_studies(n_studies: int = 23, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    studies = [f"s{i:02d}" for i in range(n_studies) for _ in range(int(rng.integers(1, 6)))]
    return [studies[i] for i in rng.permutation(len(studies))]  # a study's images need not be adjacent


def rank_batches(studies: list[str], epoch: int, even: bool, batch_size: int = 6) -> list[list[list[int]]]:
    out = []
    for rank in range(2):
        sampler = StudyAwareBatchSampler(studies, batch_size, seed=7, num_replicas=2, rank=rank, even_batches=even)
        sampler.set_epoch(epoch)
        out.append(list(sampler))
        assert len(sampler) == len(out[-1])
    return out


@pytest.mark.parametrize("epoch", [0, 1, 2])
def test_two_ranks_disjoint_complete_whole_studies(epoch: int) -> None:
    studies = make_studies()
    per_rank = rank_batches(studies, epoch, even=False)
    seen = [[i for b in batches for i in b] for batches in per_rank]
    assert sorted(seen[0] + seen[1]) == list(range(len(studies)))  # complete, each image once
    sets = [{studies[i] for i in s} for s in seen]
    assert not sets[0] & sets[1] and sets[0] | sets[1] == set(studies)  # disjoint, complete
    for batches in per_rank:
        for batch in batches:
            batch_studies = {studies[i] for i in batch}
            for s in batch_studies:  # every image of each study present is in this batch
                assert {i for i, t in enumerate(studies) if t == s} <= set(batch)
            assert len(batch) <= 6 or len(batch_studies) == 1
    counts = [len(s) for s in seen]
    assert abs(counts[0] - counts[1]) <= 5  # balanced by images (a study has at most 5)


def test_epochs_shuffle_and_seed_repeats() -> None:
    studies = make_studies()
    assert rank_batches(studies, 0, even=False) == rank_batches(studies, 0, even=False)
    assert rank_batches(studies, 0, even=False) != rank_batches(studies, 1, even=False)


def test_even_batches_gives_equal_counts_from_own_studies() -> None:
    studies = make_studies(n_studies=9, seed=3)
    uneven = rank_batches(studies, 0, even=False, batch_size=3)
    even = rank_batches(studies, 0, even=True, batch_size=3)
    assert len(even[0]) == len(even[1]) == max(len(b) for b in uneven)
    for rank in range(2):
        own = {studies[i] for b in uneven[rank] for i in b}
        assert {studies[i] for b in even[rank] for i in b} == own


def test_big_study_is_its_own_batch_and_no_shuffle_keeps_order() -> None:
    studies = ["a"] * 5 + ["b"] * 2 + ["c"] * 2
    batches = list(StudyAwareBatchSampler(studies, batch_size=4, shuffle=False))
    assert batches == [[0, 1, 2, 3, 4], [5, 6, 7, 8]]


def test_bad_world_is_refused() -> None:
    with pytest.raises(ValueError, match="rank"):
        StudyAwareBatchSampler(["a", "b"], 2, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="cannot be split"):
        StudyAwareBatchSampler(["a"], 2, num_replicas=2, rank=0)
