"""The cache of rendered slices (ctlens.api.slice_cache): bounded in bytes whatever is put in it, least recently
used out first, per content and per API key, safe under threads; and through the real service on loopback: slices
are answered from it per key, never across keys, and a deleted study's slices leave it."""

from __future__ import annotations

import io
import random
import threading

import numpy as np
import pytest
from PIL import Image

from ctlens.api.slice_cache import ENTRY_OVERHEAD, SliceCache, slice_key
from ctlens.preprocess.windows import to_display_uint8, window_limits


def _cost(value: bytes) -> int:
    return len(value) + ENTRY_OVERHEAD


def _check(cache: SliceCache) -> None:
    """The invariants: the byte count is the sum of what is held, and within the bound."""
    held = list(cache._items.values())
    assert cache.nbytes == sum(_cost(v) for v in held)
    assert cache.nbytes <= cache.max_bytes


@pytest.mark.parametrize("seed", range(5))
def test_random_use_stays_within_the_bound_and_keeps_the_most_recent(seed) -> None:
    rng = random.Random(seed)
    cache = SliceCache(max_bytes=rng.choice([0, 300, 5_000, 50_000]))
    recent: list[tuple] = []
    for _ in range(600):
        key = slice_key(f"sha{rng.randrange(4)}", f"key{rng.randrange(3)}", rng.randrange(20), "lung", "none")
        if rng.random() < 0.6:
            value = bytes([rng.randrange(256)]) * rng.choice([1, 50, 700, 4000, 60_000])
            cache.put(key, value)
            assert cache.get(key) in (value, None)  # None only when one value alone is over the bound
            assert (cache.get(key) is None) == (_cost(value) > cache.max_bytes)
        else:
            cache.get(key)
        if key in cache._items:
            recent = [k for k in recent if k != key] + [key]
        _check(cache)
    held = list(cache._items)
    assert held == [k for k in recent if k in cache._items]  # least recently used first


def test_least_recently_used_goes_first() -> None:
    cache = SliceCache(max_bytes=3 * _cost(b"x" * 100))
    a, b, c, d = (slice_key("s", "k", i, "lung", "none") for i in range(4))
    for key in (a, b, c):
        cache.put(key, b"x" * 100)
    assert cache.get(a) is not None  # a is now the most recent: b goes next
    cache.put(d, b"x" * 100)
    assert cache.get(b) is None and all(cache.get(k) is not None for k in (a, c, d))
    cache.put(a, b"y" * 150)  # replacing a value counts its new size only
    _check(cache)


def test_drop_forgets_one_content_only() -> None:
    cache = SliceCache()
    for sha in ("aaa", "bbb"):
        for owner in ("k1", "k2"):
            cache.put(slice_key(sha, owner, 0, "lung", "none"), sha.encode() * 10)
    cache.drop("aaa")
    assert {k[0] for k in cache._items} == {"bbb"} and len(cache) == 2
    _check(cache)
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


def test_keys_of_different_callers_never_meet() -> None:
    cache = SliceCache()
    cache.put(slice_key("sha", "key_a", 3, "lung", "both"), b"a")
    assert cache.get(slice_key("sha", "key_b", 3, "lung", "both")) is None
    assert slice_key("sha", "key_a", 3, "lung", "both") != slice_key("sha", "key_a", 3, "lung", "none")


def test_threads_keep_the_invariants() -> None:
    cache = SliceCache(max_bytes=200_000)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(2000):
            key = slice_key(f"s{rng.randrange(3)}", "k", rng.randrange(50), "lung", "none")
            op = rng.random()
            if op < 0.5:
                cache.put(key, b"z" * rng.randrange(1, 9000))
            elif op < 0.95:
                cache.get(key)
            else:
                cache.drop(key[0])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check(cache)
    assert cache.hits + cache.misses > 0


def test_negative_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        SliceCache(max_bytes=-1)


# ---- through the real service ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(server, tmp_path_factory):
    """A small CT NIfTI (real voxels, 6 slices) analysed by the live server; skipped without the shared data."""
    import ctlens
    from shared_data import data_dir

    folder = data_dir() / "lung_pet_ct_dx" / "Lung_Dx-A0002" / "series_B40f_8mm"
    if not folder.is_dir():
        pytest.skip(f"{folder} not in the shared data")
    volume = ctlens.load(folder)
    small = volume.with_array(np.ascontiguousarray(volume.array[12:18]))
    path = tmp_path_factory.mktemp("slices") / "chest.nii.gz"
    ctlens.save(small, path)
    with server.client() as client:
        r = client.post("/api/analyze", files=[("files", (path.name, path.read_bytes()))])
    assert r.status_code == 200, r.text
    return r.json(), path


def _png(client, study_id: str, k: int, **params) -> np.ndarray:
    r = client.get(f"/api/studies/{study_id}/slices/{k}.png", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(r.content)))


def test_service_refuses_bad_slice_requests_with_the_reason(server, study) -> None:
    body, _ = study
    with server.client() as client:
        r = client.get(f"/api/studies/{body['id']}/slices/999.png")
        assert r.status_code == 404 and "does not exist" in r.text
        r = client.get(f"/api/studies/{body['id']}/slices/0.png", params={"window": "nope"})
        assert r.status_code == 422 and "unknown window" in r.text
        r = client.get(f"/api/studies/{body['id']}/slices/0.png", params={"overlay": "nope"})
        assert r.status_code == 422 and "unknown overlay" in r.text


def test_service_slices_are_the_display_rule_and_cached_per_key(server, study) -> None:
    body, path = study
    ctx = server.ctx
    folder = ctx.content_dir(body["sha256"])
    stored = np.load(folder / "volume.npy")
    heat = np.load(folder / "heatmap.npy") if (folder / "heatmap.npy").exists() else None
    roi = np.load(folder / "roi.npy") if (folder / "roi.npy").exists() else None
    other_key = ctx.create_key("other tenant")
    with server.client() as mine, server.client(other_key) as theirs:
        # the other key sends the same bytes: its own study of the same content
        r = theirs.post("/api/analyze", files=[("files", (path.name, path.read_bytes()))])
        assert r.status_code == 200, r.text
        their_id = r.json()["id"]
        assert their_id != body["id"] and r.json()["sha256"] == body["sha256"]
        before = len(ctx.pngs)
        for k in range(stored.shape[0]):
            for window in ("lung", "bone"):
                got = _png(mine, body["id"], k, window=window)
                assert np.array_equal(got, to_display_uint8(stored[k], *window_limits(window)))
        again = _png(mine, body["id"], 2, window="lung")  # from the cache: same pixels
        assert np.array_equal(again, to_display_uint8(stored[2], *window_limits("lung")))
        assert len(ctx.pngs) == before + 2 * stored.shape[0]
        owners = {key[1] for key in ctx.pngs._items if key[0] == body["sha256"]}
        assert len(owners) == 1  # only the key that asked
        # their study: rendered for them, not handed my entries; my study id is not theirs to read
        assert theirs.get(f"/api/studies/{body['id']}/slices/2.png").status_code == 404
        hits = ctx.pngs.hits
        assert np.array_equal(_png(theirs, their_id, 2, window="lung"), again)
        assert ctx.pngs.hits == hits  # a miss for them: not answered from my slices
        owners = {key[1] for key in ctx.pngs._items if key[0] == body["sha256"]}
        assert len(owners) == 2
        if heat is not None or roi is not None:
            both = _png(mine, body["id"], 3, window="lung", overlay="both")
            assert both.ndim == 3 and both.shape[2] == 3
        # deleting both studies (the content goes) forgets its slices
        assert mine.delete(f"/api/studies/{body['id']}").status_code in (200, 204)
        assert theirs.delete(f"/api/studies/{their_id}").status_code in (200, 204)
        assert not any(key[0] == body["sha256"] for key in ctx.pngs._items)
