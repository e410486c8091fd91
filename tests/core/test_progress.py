"""ctlens.core.progress: callbacks get (done, total) in order, and descriptions only when they listen."""

from __future__ import annotations

from ctlens.core.progress import announce, counted


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.descriptions: list[str] = []

    def __call__(self, done: int, total: int) -> None:
        self.calls.append((done, total))

    def describe(self, text: str) -> None:
        self.descriptions.append(text)


def test_counted_reports_before_and_after_each_item_with_len_total() -> None:
    rec = Recorder()
    assert list(counted(["a", "b", "c"], rec, description="slices")) == ["a", "b", "c"]
    assert rec.calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert rec.descriptions == ["slices"]


def test_counted_on_a_generator_reports_unknown_total_as_zero() -> None:
    rec = Recorder()
    assert sum(counted((i for i in range(4)), rec)) == 6
    assert [t for _, t in rec.calls] == [0] * 5


def test_counted_is_lazy() -> None:
    rec = Recorder()
    it = counted([1, 2], rec)
    assert rec.calls == []
    next(it)
    assert rec.calls == [(0, 2)]


def test_announce_ignores_plain_functions_and_tells_recorders() -> None:
    announce(lambda d, t: None, "x")
    rec = Recorder()
    announce(rec, "training")
    assert rec.descriptions == ["training"]
