"""Detached headers are parsed like their readers parse them: every way a NRRD / MetaImage header can name a data
file outside its folder is refused, before SimpleITK opens anything; headers inside the folder still read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ctlens.core.errors import CorruptFileError, UnsafeArchiveError
from ctlens.core.volume import Volume
from ctlens.io.detached_header import check_data_files, parse_header, read_header
from ctlens.io.itk_image import read_itk_image, write_itk_image

SECRET = b"SECRET-BYTES-" * 8  # 104 bytes: a 2 x 2 x 26 uint8 volume, or 52 int16


def _nrrd(field: str, *, sizes: str = "2 2 26", type_: str = "uint8", extra: str = "") -> bytes:
    return (f"NRRD0004\ntype: {type_}\ndimension: 3\nsizes: {sizes}\nencoding: raw\n{extra}{field}\n").encode()


def _mhd(*lines: str) -> bytes:
    head = ["ObjectType = Image", "NDims = 3", "DimSize = 2 2 26", "ElementType = MET_UCHAR", *lines]
    return ("\n".join(head) + "\n").encode()


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """An upload folder ``root/up`` and a secret file beside it (outside) and at an absolute path."""
    root = tmp_path / "up"
    root.mkdir()
    (tmp_path / "secret.raw").write_bytes(SECRET)
    return root, tmp_path / "secret.raw"


def _refused(header: Path, root: Path) -> None:
    with pytest.raises((UnsafeArchiveError, CorruptFileError)) as info:
        check_data_files(header, read_header(header), root, what="mine.nhdr")
    assert str(root.parent) not in info.value.reason  # the reason never shows a server path
    with pytest.raises((UnsafeArchiveError, CorruptFileError)):
        read_itk_image(header)  # strict by default too: SimpleITK never sees it


VARIANTS = [
    ("abs.nhdr", lambda s: _nrrd(f"data file: {s}")),
    ("abs-nospace.nhdr", lambda s: _nrrd(f"datafile: {s}")),
    ("case.nhdr", lambda s: _nrrd(f"Data File: {s}")),
    ("underscore.nhdr", lambda s: _nrrd(f"data_file: {s}")),
    ("rel.nhdr", lambda s: _nrrd("data file: ../secret.raw")),
    ("deep.nhdr", lambda s: _nrrd("data file: ./a/../../secret.raw")),
    ("list.nhdr", lambda s: _nrrd("data file: LIST 3", extra="").rstrip(b"\n") + f"\n{s}\n".encode()),
    ("printf.nhdr", lambda s: _nrrd("data file: ../secret%d.raw 1 1 1 3")),
    ("keyvalue.nhdr", lambda s: _nrrd(f"data file:= {s}")),
    ("attached.nrrd", lambda s: _nrrd(f"data file: {s}") + b"\n" + bytes(104)),
    ("padded.nrrd", lambda s: _nrrd(f"data file: {s}", extra="# " + "x" * 200_000 + "\n") + b"\n" + bytes(104)),
    ("mhd-abs.mhd", lambda s: _mhd(f"ElementDataFile = {s}")),
    ("mhd-colon.mhd", lambda s: _mhd(f"ElementDataFile: {s}")),
    ("mhd-rel.mhd", lambda s: _mhd("ElementDataFile = ../secret.raw")),
    ("mhd-comment-trick.mha", lambda s: _mhd("Comment = ElementDataFile = LOCAL", f"ElementDataFile = {s}")),
    ("mhd-padded.mha", lambda s: _mhd("Comment = " + "x" * 400, "Comment = " + "y" * 400, f"ElementDataFile = {s}")),
    ("mhd-list.mhd", lambda s: _mhd("ElementDataFile = LIST") + f"{s}\n".encode()),
    ("mhd-pattern.mhd", lambda s: _mhd("ElementDataFile = ../secret%d.raw 1 1 1")),
    ("mhd-lowercase.mhd", lambda s: _mhd(f"elementdatafile = {s}", "ElementDataFile = LOCAL")),
    ("mhd-cr.mha", lambda s: _mhd(f"ElementDataFile\rComment = {s}")),
    ("mhd-noseparator.mha", lambda s: _mhd("Comment", "ElementDataFile = LOCAL", f"ElementDataFile = {s}")),
    ("mhd-nul.mha", lambda s: _mhd(f"ElementDataFile\0x = {s}")),
    ("mhd-longline.mha", lambda s: _mhd("Comment = " + "z" * 600, f"ElementDataFile = {s}")),
]
"""(upload name, header bytes from the secret's absolute path): each names a file outside its folder."""

FOLLOWED = (
    "abs.nhdr",
    "rel.nhdr",
    "list.nhdr",
    "printf.nhdr",
    "attached.nrrd",
    "mhd-abs.mhd",
    "mhd-colon.mhd",
    "mhd-comment-trick.mha",
)
"""Variants SimpleITK really follows when trusted: the attacks are real, not only refused by form."""


@pytest.mark.parametrize("name, body", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_outside_reference_is_refused(layout, name, body):
    root, secret = layout
    header = root / name
    header.write_bytes(body(secret))
    (root.parent / "secret1.raw").write_bytes(SECRET)
    _refused(header, root)


def test_link_inside_the_folder_is_refused(layout):
    root, secret = layout
    os.symlink(secret, root / "data.raw")
    (root / "v.nhdr").write_bytes(_nrrd("data file: data.raw"))
    _refused(root / "v.nhdr", root)
    (root / "sub").symlink_to(root.parent, target_is_directory=True)
    (root / "w.mhd").write_bytes(_mhd("ElementDataFile = sub/secret.raw"))
    _refused(root / "w.mhd", root)


def test_a_header_outside_the_root_is_refused(layout):
    root, _ = layout
    header = root.parent / "v.nhdr"
    header.write_bytes(_nrrd("data file: secret.raw"))
    with pytest.raises(UnsafeArchiveError, match="not inside"):
        check_data_files(header, read_header(header), root)


@pytest.mark.parametrize("suffix", [".nhdr", ".mhd"])
@pytest.mark.parametrize("compress", [False, True])
def test_data_files_inside_the_folder_still_read(tmp_path, suffix, compress):
    vol = Volume(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6))
    write_itk_image(vol, tmp_path / f"v{suffix}", compress=compress)
    info = read_header(tmp_path / f"v{suffix}")
    files = check_data_files(tmp_path / f"v{suffix}", info, tmp_path)
    assert len(files) == 1 and files[0].parent == tmp_path and info.compressed == compress
    assert info.declared_bytes == vol.array.nbytes
    np.testing.assert_array_equal(read_itk_image(tmp_path / f"v{suffix}").array, vol.array)


def test_list_and_pattern_inside_the_folder_read(tmp_path):
    slices = [np.full((3, 4), i, np.uint8) for i in range(3)]
    for i, s in enumerate(slices):
        (tmp_path / f"s{i + 1:03d}.raw").write_bytes(s.tobytes())
    head = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 3 3\nencoding: raw\n"
    (tmp_path / "p.nhdr").write_text(head + "data file: s%03d.raw 1 3 1 2\n")
    (tmp_path / "l.nhdr").write_text(head + "data file: LIST 2\ns001.raw\ns002.raw\ns003.raw\n")
    for name in ("p.nhdr", "l.nhdr"):
        info = read_header(tmp_path / name)
        assert [p.name for p in check_data_files(tmp_path / name, info, tmp_path)] == [
            "s001.raw",
            "s002.raw",
            "s003.raw",
        ]
        np.testing.assert_array_equal(read_itk_image(tmp_path / name).array, np.stack(slices))


@pytest.mark.parametrize("name, body", [v for v in VARIANTS if v[0] in FOLLOWED], ids=list(FOLLOWED))
def test_the_attacks_are_real_and_the_cli_may_follow_its_own_files(layout, name, body):
    root, secret = layout
    (root.parent / "secret1.raw").write_bytes(SECRET)
    (root / name).write_bytes(body(secret))
    assert read_itk_image(root / name, allow_outside=True).array.tobytes() == SECRET


def test_padding_cannot_hide_a_field_beyond_the_read_limit(tmp_path):
    path = tmp_path / "long.nhdr"
    path.write_bytes(b"NRRD0004\n" + b"# pad\n" * 300_000 + b"data file: /etc/passwd\n")
    with pytest.raises(UnsafeArchiveError, match="no complete header"):
        read_header(path)


@pytest.mark.parametrize(
    "text, declared, compressed",
    [
        (b"NRRD0005\ntype: short\nsizes: 512 512 300\nencoding: gzip\n\n", 512 * 512 * 300 * 2, True),
        (b"NRRD0004\ntype: unsigned char\nsizes: 3 4\nencoding: bz2\n\n", 12, True),
        (b"NRRD0004\ntype: double\nsizes: 2 2\n\n", 32, False),
        (
            b"NDims = 2\nDimSize = 3 4\nElementType = MET_FLOAT\nCompressedData = True\nElementDataFile = LOCAL\n",
            48,
            True,
        ),
        (
            b"NDims=2\nDimSize=3 4\nElementNumberOfChannels=3\nElementType=MET_USHORT\nElementDataFile=LOCAL\n",
            72,
            False,
        ),
    ],
)
def test_declared_voxel_bytes(text, declared, compressed):
    info = parse_header(text + bytes(16))
    assert (info.declared_bytes, info.compressed, info.data_files) == (declared, compressed, [])
    assert info.header_bytes == len(text)


def test_patterns_with_other_conversions_are_refused():
    for value in ("%s 1 2 1", "%d%d 1 2 1", "%*d 1 2 1", "%n 1 2 1"):
        with pytest.raises(UnsafeArchiveError):
            parse_header(f"NRRD0004\ndata file: {value}\n".encode())
    with pytest.raises(UnsafeArchiveError, match="more than"):
        parse_header(b"NRRD0004\ndata file: s%d.raw 1 10000000 1\n")
