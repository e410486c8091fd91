"""``CTScanCompressor`` of seed 000 (``ct_compression``): the earlier library's API on top of :mod:`ctlens.codec` and
:func:`ctlens.llm.payload.build_payload`; also ``python -m ctlens.compat.ct_compression DIR OUT.json``.

The seed's calls run as written: ``load_ct_series(dir) -> (slices, metadata)``, ``encode_ct_series(slices,
metadata) -> dict``, ``decode_ct_series(encoded) -> slices``, ``prepare_for_llm(encoded, clinical_question) ->
{"prompt", "base_image_base64", ...}``, ``save_encoded``/``load_encoded`` (JSON), ``get_stats()``. What differs, and
why (docs/coming_from_ct_compression.md has the whole list): slices are HU integers, not windowed images (windowing
is a display step and would lose the lossless guarantee); the encoded dict wraps a checked ``.ctz`` file (JPEG-LS /
HTJ2K, previous-slice prediction in lossless mode); ``mode="roi"`` (default) keeps the ROI bit-exact and bounds the
error elsewhere by ``max_error``; ``prepare_for_llm`` does not promise token savings from byte compression
(providers bill image tokens by pixels) but builds one PNG within a Claude-sized image from the decoded series.

Example:
    >>> import numpy as np
    >>> from ctlens.core.volume import Volume
    >>> c = CTScanCompressor(roi_percentile=80, compression_level=5)
    >>> vol = np.full((2, 32, 32), -1000, np.int16); vol[:, 8:24, 8:24] = 40
    >>> slices, meta = c.slices_of(Volume(vol))
    >>> back = c.decode_ct_series(c.encode_ct_series(slices, meta))
    >>> int(np.abs(np.stack(back).astype(int) - vol).max()) <= c.max_error
    True
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ctlens.codec import roi as roi_mod
from ctlens.codec.container import CtzReader
from ctlens.codec.series import JSON_FORMAT, decode_volume, encode_volume, import_json
from ctlens.compat.ct_slices import slices_to_volume, volume_to_slices
from ctlens.core.errors import CorruptFileError, CTLensError
from ctlens.core.volume import Volume

__all__ = ["CTScanCompressor", "CompressionStats", "main"]

_LUNG_WORDS = ("lung", "pulmonary", "nodule", "emphysema", "pneumo", "bronch", "airway", "embolism")


class CompressionStats(dict):
    """The statistics of the last encode/decode: a dict whose keys are also attributes (``stats.roi_coverage``).

    Example:
        >>> s = CompressionStats(compression_ratio=3.5); s.compression_ratio, s["compression_ratio"]
        (3.5, 3.5)
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _profile_for(level: int) -> str:
    """Entropy-stage profile of a seed ``compression_level`` (1-3 fast, 4-8 compact, 9 tries every stage)."""
    return "fast" if level <= 3 else ("compact" if level <= 8 else "thorough")


class CTScanCompressor:
    """Compress CT series (ROI-lossless by default) and prepare an LLM payload, with seed 000's interface.

    ``roi_percentile``: per-slice detail percentile that seeds the ROI (higher = less ROI; see
    :func:`ctlens.codec.roi.detect_roi`). ``compression_level``: 1-9; higher tries more entropy coders per slice
    (1-3 HTJ2K: fastest; 4-8 JPEG-LS; 9 both plus blosc2, the smallest wins) and is the zstd level of the ROI
    correction layer. ``mode``: ``"roi"`` (ROI bit-exact, elsewhere within ``max_error`` HU) or ``"lossless"``.
    ``profile`` overrides the coder choice of ``compression_level``.
    """

    def __init__(
        self,
        roi_percentile: float = 85,
        compression_level: int = 9,
        *,
        mode: str = "roi",
        max_error: int = 2,
        profile: str | None = None,
        dilation_mm: float = roi_mod.DEFAULT_DILATION_MM,
        progress: bool = False,
    ) -> None:
        if not 1 <= int(compression_level) <= 9:
            raise ValueError(f"compression_level must be 1-9, got {compression_level}")
        if not 0 <= float(roi_percentile) <= 100:
            raise ValueError(f"roi_percentile must be within 0..100, got {roi_percentile}")
        self.roi_percentile = float(roi_percentile)
        self.compression_level = int(compression_level)
        self.mode = mode
        self.max_error = int(max_error)
        self.profile = profile or _profile_for(self.compression_level)
        self.dilation_mm = float(dilation_mm)
        self.progress = progress
        self.stats = CompressionStats()
        self._pixel_spacing: tuple[float, float] | None = None

    # -- loading -----------------------------------------------------------------------------------------------
    def load_ct_series(self, dicom_folder: str | Path, **options: Any) -> tuple[list[np.ndarray], list[dict]]:
        """``(slices, metadata)`` of a DICOM folder (or zip, NIfTI, NRRD/MHA, ``.ctz``): HU slices sorted by position.

        ``options`` go to :func:`ctlens.io.load` (``series=...`` picks one of several series).
        """
        return self.slices_of(self.load_volume(dicom_folder, **options))

    def load_volume(self, path: str | Path, **options: Any) -> Volume:
        """The series as one ctlens :class:`Volume` (HU, LPS geometry)."""
        if str(path).endswith(".ctz"):
            return decode_volume(path)
        from ctlens.io.loader import load

        return load(path, **options)

    @staticmethod
    def slices_of(volume: Volume) -> tuple[list[np.ndarray], list[dict]]:
        """A volume as the seed's ``(slices, metadata)`` (see :func:`ctlens.compat.ct_slices.volume_to_slices`)."""
        return volume_to_slices(volume)

    # -- ROI ---------------------------------------------------------------------------------------------------
    def detect_roi(self, image: np.ndarray) -> np.ndarray:
        """Boolean ROI mask of one 2-D HU slice (True = kept bit-exact). Override it; encoding uses the override."""
        return roi_mod.detect_roi(np.asarray(image), self.roi_percentile, self.dilation_mm, self._pixel_spacing)

    def _user_roi(self, image: np.ndarray) -> np.ndarray:
        mask = np.asarray(self.detect_roi(image))
        if mask.shape != image.shape:
            raise ValueError(f"detect_roi returned shape {mask.shape} for a slice of shape {image.shape}")
        return mask.astype(bool)

    def _overridden(self) -> bool:
        return type(self).detect_roi is not CTScanCompressor.detect_roi

    # -- encode / decode ---------------------------------------------------------------------------------------
    def _as_volume(self, slices: Any, metadata: Sequence[dict] | None) -> Volume:
        if isinstance(slices, Volume):
            return slices
        if isinstance(slices, str | Path):
            return self.load_volume(slices)
        if isinstance(slices, np.ndarray) and slices.ndim == 3:
            slices = list(slices)
        return slices_to_volume(slices, metadata)

    def encode_ct_series(
        self, slices: Sequence[np.ndarray] | np.ndarray | Volume | str | Path, metadata: Sequence[dict] | None = None
    ) -> dict[str, Any]:
        """Encode the slices (or a Volume / path) into a JSON-ready dict holding a checked ``.ctz`` file.

        Keys: ``format``, ``version``, ``header`` (geometry, codec parameters), ``stats``, ``encoding``,
        ``ctz_base64``, ``slice_metadata`` (the metadata as given, or derived from the volume).
        """
        volume = self._as_volume(slices, metadata)
        meta_list = list(metadata) if metadata is not None else volume_to_slices(volume)[1]
        self._pixel_spacing = (float(volume.spacing[1]), float(volume.spacing[2]))
        options: dict[str, Any] = {
            "mode": self.mode,
            "max_error": self.max_error,
            "profile": self.profile,
            "roi_percentile": self.roi_percentile,
            "dilation_mm": self.dilation_mm,
            "level": self.compression_level,
            "progress": self.progress,
        }
        roi_coverage = None
        if self._overridden():
            masks = [self._user_roi(volume.array[k]) for k in range(volume.shape[0])]
            roi_coverage = float(np.mean([m.mean() for m in masks])) if masks else 0.0
            if self.mode == "roi":
                options["roi_fn"] = self._user_roi
        with tempfile.TemporaryDirectory(prefix="ctlens-ctz-") as tmp:
            path = Path(tmp) / "series.ctz"
            stats = encode_volume(volume, path, **options)
            reader = CtzReader(path)
            header, trailer = reader.header, reader.trailer
            data = path.read_bytes()
        codec_stats = stats.as_dict()
        if roi_coverage is not None:
            codec_stats["roi_coverage"] = roi_coverage
        self._record(codec_stats)
        return {
            "format": JSON_FORMAT,
            "version": 1,
            "header": header,
            "stats": trailer.get("stats", codec_stats) | {"roi_coverage": codec_stats["roi_coverage"]},
            "encoding": "base64",
            "ctz_base64": base64.b64encode(data).decode("ascii"),
            "slice_metadata": json.loads(json.dumps(meta_list, default=_json_default)),
        }

    def _record(self, codec: dict[str, Any]) -> None:
        raw, enc = codec["raw_bytes"], codec["encoded_bytes"]
        self.stats = CompressionStats(
            num_slices=codec["n_slices"],
            original_size=raw,
            compressed_size=enc,
            compression_ratio=codec["ratio"],
            space_saved=1.0 - enc / raw if raw else 0.0,
            roi_coverage=codec["roi_coverage"],
            max_error=codec["max_error"],
            encode_time=codec["encode_seconds"],
            mode=codec["mode"],
            profile=self.profile,
            codec=codec,
        )

    def decode_volume(self, encoded: dict[str, Any] | str | Path) -> Volume:
        """The encoded series (dict, ``.json`` or ``.ctz`` path) as a :class:`Volume` with its geometry."""
        start = time.perf_counter()
        if isinstance(encoded, str | Path):
            encoded = self.load_encoded(encoded)
        with tempfile.TemporaryDirectory(prefix="ctlens-ctz-") as tmp:
            path = Path(tmp) / "series.ctz"
            try:
                path.write_bytes(base64.b64decode(encoded["ctz_base64"], validate=True))
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptFileError(f"not an encoded CT series ({exc})", path="encoded") from exc
            volume = decode_volume(path)
        self.stats["decode_time"] = time.perf_counter() - start
        return volume

    def decode_ct_series(self, encoded: dict[str, Any] | str | Path) -> list[np.ndarray]:
        """Reconstruct the slices (HU, in the order encoded): exact in the ROI, within ``max_error`` elsewhere."""
        volume = self.decode_volume(encoded)
        return [volume.array[k] for k in range(volume.shape[0])]

    # -- files -------------------------------------------------------------------------------------------------
    def save_encoded(self, encoded: dict[str, Any], output_path: str | Path) -> None:
        """Write the encoded dict as JSON (or, for a ``.ctz`` name, the bare container); atomic."""
        from ctlens.io.files import atomic_output

        output_path = Path(output_path)
        with atomic_output(output_path) as tmp:
            if output_path.suffix.lower() == ".ctz":
                tmp.write_bytes(base64.b64decode(encoded["ctz_base64"]))
            else:
                tmp.write_text(json.dumps(encoded))

    def load_encoded(self, input_path: str | Path) -> dict[str, Any]:
        """Read a JSON written by :meth:`save_encoded` (or a ``.ctz``); checksums are verified first."""
        input_path = Path(input_path)
        with tempfile.TemporaryDirectory(prefix="ctlens-ctz-") as tmp:
            ctz = Path(tmp) / "series.ctz"
            doc: dict[str, Any] = {}
            if input_path.suffix.lower() == ".ctz":
                ctz = input_path
            else:
                import_json(input_path, ctz)  # validates format, base64 and every CRC; names input_path on error
                doc = json.loads(input_path.read_text())
            reader = CtzReader(ctz)
            reader.verify()
            data = ctz.read_bytes()
        return {
            "format": JSON_FORMAT,
            "version": 1,
            "header": reader.header,
            "stats": reader.trailer.get("stats", {}),
            "encoding": "base64",
            "ctz_base64": base64.b64encode(data).decode("ascii"),
            "slice_metadata": doc.get("slice_metadata") or [],
        }

    # -- LLM ---------------------------------------------------------------------------------------------------
    def prepare_for_llm(
        self,
        encoded: dict[str, Any] | Volume | str | Path,
        clinical_question: str = "Describe the findings.",
        *,
        provider: str = "anthropic",
        model: str | None = None,
        window: str = "auto",
        token_budget: int = 2000,
    ) -> dict[str, Any]:
        """``{"prompt", "base_image_base64", ...}``: one PNG montage of the decoded series within one Claude-sized
        image, and a prompt with the question, acquisition facts and how to read the tiles.

        ``window``: ``"lung"``, ``"mediastinum"``, ``"bone"``, ... or ``"auto"`` (lung when the question names the
        lungs or airways, else mediastinum). Other keys: ``media_type``, ``window``, ``image_size``,
        ``token_estimate`` (provider pixel rules), ``slice_indices``, ``clinical_question``, ``compression_stats``.
        """
        from ctlens.llm.payload import build_payload

        volume = encoded if isinstance(encoded, Volume) else self.decode_volume(encoded)
        if window == "auto":
            q = clinical_question.lower()
            window = "lung" if any(w in q for w in _LUNG_WORDS) else "mediastinum"
        payload = None
        for min_scale in (0.5, 0.25, 0.125):  # a long series needs smaller tiles to fit in one image
            payload = build_payload(
                volume, clinical_question, provider, model, token_budget, windows=(window,), crops=False,
                min_scale=min_scale, progress=False,
            )  # fmt: skip
            if len(payload.images) == 1:
                break
        assert payload is not None
        if len(payload.images) != 1:
            raise CTLensError(
                f"{volume.shape[0]} slices do not fit one image at 1/8 scale",
                hint="use ctlens.llm.payload.build_payload for a multi-image payload",
            )
        image = payload.images[0]
        stats = encoded.get("stats", {}) if isinstance(encoded, dict) else {}
        return {
            "prompt": payload.text,
            "base_image_base64": base64.b64encode(image.png).decode("ascii"),
            "media_type": "image/png",
            "window": window,
            "image_size": [image.width, image.height],
            "token_estimate": payload.token_estimate,
            "slice_indices": sorted({t.slice_index for t in image.tiles}),
            "clinical_question": clinical_question,
            "compression_stats": stats,
        }

    def get_stats(self) -> CompressionStats:
        """Sizes, ratio, ROI coverage, max error and timings of the last encode/decode.

        Example:
            >>> import numpy as np
            >>> c = CTScanCompressor()
            >>> _ = c.encode_ct_series([np.zeros((16, 16), np.int16)], [{}])
            >>> s = c.get_stats(); s.num_slices, s.original_size
            (1, 512)
        """
        return self.stats


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ctlens.compat.ct_compression DIR OUT.json``: encode a series and write the JSON; 0 on success.

    Example:
        >>> main(["/no/such/folder", "out.json"])
        2
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print("usage: python -m ctlens.compat.ct_compression DICOM_FOLDER OUTPUT.json", file=sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    source, output = args
    compressor = CTScanCompressor()
    try:
        slices, metadata = compressor.load_ct_series(source)
        encoded = compressor.encode_ct_series(slices, metadata)
        compressor.save_encoded(encoded, output)
    except (CTLensError, ValueError, OSError) as exc:
        reason = exc.one_line() if isinstance(exc, CTLensError) else str(exc)
        if not reason.startswith(source) and source not in reason:
            reason = f"{source}: {reason}"
        print(f"ctlens: error: {reason}", file=sys.stderr)
        return 2
    s = compressor.get_stats()
    print(f"Number of slices: {s.num_slices}")
    print(f"Original: {s.original_size / 1e6:.2f} MB  Compressed: {s.compressed_size / 1e6:.2f} MB")
    print(f"Compression ratio: {s.compression_ratio:.2f}x  Space saved: {100 * s.space_saved:.1f}%")
    print(f"ROI coverage: {100 * s.roi_coverage:.1f}% of pixels  Max error outside ROI: {s.max_error} HU")
    print("LLM tokens depend on the pixels sent, not on these bytes (see prepare_for_llm).")
    print(f"Wrote {output}")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess in the tests
    raise SystemExit(main())
