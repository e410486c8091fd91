"""``CTScanCompressor`` of seed 000 (``ct_compression``): the earlier library's API on top of :mod:`ctlens.codec` and
:mod:`ctlens.llm.payload`.

What changed from the earlier library, and why: files are compressed by a measured codec (JPEG-LS / HTJ2K
with previous-slice prediction) into a checked ``.ctz`` container, ``mode="roi"`` keeps the ROI bit-exact and
bounds the error elsewhere by ``max_error`` HU; ``prepare_for_llm`` does not claim token savings from byte
compression (providers count image tokens from pixels) but builds a token-budgeted payload of key images.

Example:
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> c = CTScanCompressor(roi_percentile=80, compression_level=5)
    >>> vol = np.full((2, 32, 32), -1000, np.int16); vol[:, 8:24, 8:24] = 40
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.ctz"
    >>> c.save_encoded(c.encode_ct_series(vol), path)
    >>> np.array_equal(c.decode_ct_series(c.load_encoded(path)).array, vol)
    True
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ctlens.codec import roi as roi_mod
from ctlens.codec.series import CodecStats, decode_volume, encode_volume, export_json, import_json, read_info
from ctlens.core.volume import Volume

if TYPE_CHECKING:
    from ctlens.llm.payload_types import Payload

__all__ = ["CTScanCompressor", "EncodedSeries"]


@dataclasses.dataclass
class EncodedSeries:
    """An encoded series: the ``.ctz`` bytes plus their statistics (kept in memory until saved)."""

    data: bytes
    stats: CodecStats

    @property
    def nbytes(self) -> int:
        """Encoded size in bytes."""
        return len(self.data)


class CTScanCompressor:
    """Compress CT series losslessly or ROI-losslessly and prepare token-budgeted LLM payloads.

    ``roi_percentile``: detail percentile that seeds the ROI (see :func:`ctlens.codec.roi.detect_roi`).
    ``compression_level``: 1-9, the zstd level of the ROI correction layer and blosc2 stage.
    ``mode``: ``"lossless"`` (default) or ``"roi"``; ``max_error``: HU bound outside the ROI in ``roi`` mode.
    ``profile``: ``"compact"`` (JPEG-LS, smallest), ``"fast"`` (HTJ2K, fastest decode) or ``"thorough"``.
    """

    def __init__(
        self,
        roi_percentile: float = roi_mod.DEFAULT_PERCENTILE,
        compression_level: int = 5,
        *,
        mode: str = "lossless",
        max_error: int = 5,
        profile: str = "compact",
        dilation_mm: float = roi_mod.DEFAULT_DILATION_MM,
        progress: bool = False,
    ) -> None:
        self.roi_percentile = float(roi_percentile)
        self.compression_level = int(compression_level)
        self.mode = mode
        self.max_error = int(max_error)
        self.profile = profile
        self.dilation_mm = float(dilation_mm)
        self.progress = progress
        self._stats: dict[str, Any] = {}

    def load_ct_series(self, path: str | Path, **options: Any) -> Volume:
        """Load a DICOM folder/zip, NIfTI, NRRD/MHA or ``.ctz`` file as a :class:`Volume` (HU)."""
        if str(path).endswith(".ctz"):
            return decode_volume(path, progress=self.progress)
        from ctlens.io.loader import load

        return load(path, **options)

    def detect_roi(self, volume: Volume | np.ndarray) -> np.ndarray:
        """Boolean ROI mask ``[z, y, x]`` with this compressor's parameters."""
        vol = volume if isinstance(volume, Volume) else Volume(np.asarray(volume))
        return roi_mod.detect_roi(vol.array, self.roi_percentile, self.dilation_mm, vol.spacing)

    def encode_ct_series(self, volume: Volume | np.ndarray | str | Path) -> EncodedSeries:
        """Encode a volume (or a path, loaded first) into ``.ctz`` bytes held in memory."""
        if isinstance(volume, str | Path):
            volume = self.load_ct_series(volume)
        with tempfile.TemporaryDirectory(prefix="ctlens-ctz-") as tmp:
            path = Path(tmp) / "series.ctz"
            stats = encode_volume(
                volume,
                path,
                mode=self.mode,
                max_error=self.max_error,
                profile=self.profile,
                roi_percentile=self.roi_percentile,
                dilation_mm=self.dilation_mm,
                level=self.compression_level,
                progress=self.progress,
            )
            data = path.read_bytes()
        self._stats.update(stats.as_dict())
        return EncodedSeries(data, stats)

    def decode_ct_series(self, encoded: EncodedSeries | str | Path) -> Volume:
        """Decode an :class:`EncodedSeries` (or a ``.ctz`` path) back into a :class:`Volume`."""
        start = time.perf_counter()
        if isinstance(encoded, EncodedSeries):
            with tempfile.TemporaryDirectory(prefix="ctlens-ctz-") as tmp:
                path = Path(tmp) / "series.ctz"
                path.write_bytes(encoded.data)
                volume = decode_volume(path, progress=self.progress)
        else:
            volume = decode_volume(encoded, progress=self.progress)
        self._stats["decode_seconds"] = time.perf_counter() - start
        return volume

    def save_encoded(self, encoded: EncodedSeries, path: str | Path) -> None:
        """Write the encoded series to ``path``: ``.ctz`` (binary) or ``.json`` (base64, earlier API)."""
        from ctlens.io.files import atomic_output

        path = Path(path)
        if path.suffix.lower() == ".json":
            with tempfile.TemporaryDirectory(prefix="ctlens-ctz-") as tmp:
                src = Path(tmp) / "series.ctz"
                src.write_bytes(encoded.data)
                export_json(src, path)
            return
        with atomic_output(path) as tmp_path:
            tmp_path.write_bytes(encoded.data)

    def load_encoded(self, path: str | Path) -> EncodedSeries:
        """Read a ``.ctz`` or ``.json`` export (checksums verified) into an :class:`EncodedSeries`."""
        from ctlens.codec.container import CtzReader

        path = Path(path)
        with tempfile.TemporaryDirectory(prefix="ctlens-ctz-") as tmp:
            src = path
            if path.suffix.lower() == ".json":
                src = Path(tmp) / "series.ctz"
                import_json(path, src)
            CtzReader(src).verify()
            data = src.read_bytes()
            stats_dict = read_info(src).get("stats", {})
        fields = {f.name for f in dataclasses.fields(CodecStats)}
        stats = CodecStats(**{k: v for k, v in stats_dict.items() if k in fields})
        return EncodedSeries(data, stats)

    def prepare_for_llm(
        self,
        volume: Volume | str | Path,
        question: str = "Describe the findings.",
        provider: str = "anthropic",
        model: str | None = None,
        token_budget: int = 6000,
        **options: Any,
    ) -> Payload:
        """A de-identified, token-budgeted payload (:func:`ctlens.llm.payload.build_payload`).

        Token cost depends on the pixels sent, never on file bytes: this picks key slices and crops instead.
        """
        from ctlens.llm.payload import build_payload

        if isinstance(volume, str | Path) and str(volume).endswith(".ctz"):
            volume = decode_volume(volume)
        return build_payload(volume, question, provider, model, token_budget, **options)

    def get_stats(self) -> dict[str, Any]:
        """Bytes, ratio, ROI coverage, max error and timings of the last encode/decode.

        Example:
            >>> import numpy as np
            >>> c = CTScanCompressor()
            >>> _ = c.encode_ct_series(np.zeros((1, 16, 16), np.int16))
            >>> sorted(k for k in c.get_stats() if k in ("ratio", "roi_coverage", "max_error"))
            ['max_error', 'ratio', 'roi_coverage']
        """
        return dict(self._stats)
