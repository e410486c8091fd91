"""Hostile upload bodies (zip bomb, path traversal, symlink, empty, wrong magic, pixel bomb, gzip bomb, small-member
zip bomb), a server with the auth gate, and a disk/memory watcher for bomb tests."""

from __future__ import annotations

import io
import struct
import threading
import time
import zipfile
import zlib

import numpy as np
from PIL import Image


def zip_bomb(megabytes: int = 40) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("series/1.dcm", b"\0" * (megabytes << 20))
    return buf.getvalue()


def traversal_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok/1.dcm", b"\0" * 128 + b"DICM" + b"\0" * 64)
        z.writestr("../../escaped.dcm", b"\0" * 128 + b"DICM" + b"\0" * 64)
    return buf.getvalue()


def symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("link.dcm")
        info.external_attr = (0o120777 << 16) | 0  # S_IFLNK
        z.writestr(info, "/etc/passwd")
    return buf.getvalue()


def not_dicom_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", b"hello")
    return buf.getvalue()


def pixel_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (Pillow must refuse it before decoding)."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[12:29])  # 'IHDR' + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


def truncated_dicom() -> bytes:
    """The DICOM preamble and magic, then garbage: sniffed as DICOM, refused by the reader."""
    return b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00garbage" * 10


def bare_data_set_then_garbage() -> bytes:
    """Three valid implicit-VR elements (a bare data set, no preamble), then a length that runs off the end."""

    def element(group: int, elem: int, value: bytes) -> bytes:
        return struct.pack("<HHI", group, elem, len(value)) + value

    head = element(8, 0x16, b"1.2.840.10008.5.1.4.1.1.2\0") + element(8, 0x18, b"1.2.3.4\0") + element(8, 0x60, b"CT")
    return head + struct.pack("<HHI", 0x28, 0x10, 0x7FFFFFF0) + b"\x01" * 64


def gzip_bomb_nifti(mebibytes: int = 256) -> bytes:
    """A NIfTI of ``mebibytes`` MiB of zeros, gzip-compressed (256 MiB -> ~255 KB), built without holding it whole."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((512, 512, mebibytes * 4))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(header.binaryblock + bytes(4))]
    zeros = bytes(1 << 20)
    parts += [packer.compress(zeros) for _ in range(mebibytes)]
    return b"".join([*parts, packer.flush()])


def small_member_zip_bomb(members: int = 300, size: int = 1 << 20) -> bytes:
    """``members`` DICOM-named members of ``size`` zero bytes each (300 x 1 MiB -> ~300 KB)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(members):
            z.writestr(f"series/{i:05d}.dcm", bytes(size))
    return buf.getvalue()


class Watcher:
    """Samples the used bytes of the folders' file systems (and the temp folder's) and this process's RSS in a
    thread; ``disk_growth`` / ``rss_growth`` are peak minus start."""

    def __init__(self, *folders, every: float = 0.005) -> None:
        import os
        import tempfile

        import psutil

        by_device = {os.stat(f).st_dev: str(f) for f in (*folders, tempfile.gettempdir())}
        self.folders, self.every = list(by_device.values()), every  # spooled uploads go to the temp folder
        self.process = psutil.Process()
        self.disk0 = self.disk_peak = self._disk()
        self.rss0 = self.rss_peak = self.process.memory_info().rss
        self._stop = False

    def _disk(self) -> int:
        import shutil

        return sum(shutil.disk_usage(f).used for f in self.folders)

    def _run(self) -> None:
        while not self._stop:
            self.disk_peak = max(self.disk_peak, self._disk())
            self.rss_peak = max(self.rss_peak, self.process.memory_info().rss)
            time.sleep(self.every)

    def __enter__(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self.thread.join()

    @property
    def disk_growth(self) -> int:
        return self.disk_peak - self.disk0

    @property
    def rss_growth(self) -> int:
        return self.rss_peak - self.rss0
