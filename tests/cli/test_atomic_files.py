"""Files a later run depends on (keys, the API-key registry, …) are written all or nothing: a
write that fails as a full disk does leaves the old file (or none) and no temporary file
behind, and the next write works. The failing disk is a fake writer handed to the helpers."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from nervenbahn.private import create_private, write_all, write_private


class FullDisk:
    """A writer that puts `room` bytes on the file, then fails as a full disk does."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.calls = 0

    def __call__(self, fd: int, data: bytes) -> None:
        self.calls += 1
        write_all(fd, data[: self.room])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("room", [0, 5])
def test_a_new_key_file_on_a_full_disk_is_not_there_at_all(tmp_path: Path, room: int) -> None:
    key = tmp_path / "keys" / "signing.key"
    disk = FullDisk(room)

    with pytest.raises(OSError) as raised:
        create_private(key, "c2VjcmV0IGtleSBieXRlcw==\n", write=disk)

    assert raised.value.errno == errno.ENOSPC and disk.calls == 1
    assert not key.exists() and _listing(key.parent) == {}  # no empty key, no temporary file
    create_private(key, "c2VjcmV0IGtleSBieXRlcw==\n")  # the next run, with room, makes it
    assert key.read_text() == "c2VjcmV0IGtleSBieXRlcw==\n"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_create_private_never_overwrites_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    key = create_private(tmp_path / "master.key", b"first\n")

    with pytest.raises(FileExistsError):
        create_private(key, b"second\n")

    assert _listing(tmp_path) == {"master.key": b"first\n"}


@pytest.mark.parametrize("room", [0, 7])
def test_a_rewrite_on_a_full_disk_keeps_the_old_content(tmp_path: Path, room: int) -> None:
    registry = write_private(tmp_path / "api-keys.json", '{"consumers": []}\n')

    with pytest.raises(OSError, match="No space left on device"):
        write_private(registry, '{"consumers": [{"name": "statistik"}]}\n', write=FullDisk(room))

    assert _listing(tmp_path) == {"api-keys.json": b'{"consumers": []}\n'}
    write_private(registry, '{"consumers": [{"name": "statistik"}]}\n')
    assert _listing(tmp_path) == {"api-keys.json": b'{"consumers": [{"name": "statistik"}]}\n'}
    assert stat.S_IMODE(registry.stat().st_mode) == 0o600


@pytest.mark.usefixtures("umask_000")
def test_the_temporary_file_is_private_from_the_start(tmp_path: Path) -> None:
    seen: list[int] = []

    def watching(fd: int, data: bytes) -> None:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        write_all(fd, data)

    write_private(tmp_path / "store", "/srv/nervenbahn/store.db\n", write=watching)
    create_private(tmp_path / "reporting.key", "a2V5\n", write=watching)

    assert seen == [0o600, 0o600]


@pytest.fixture
def umask_000() -> Iterator[None]:
    """The most permissive umask, so that only the helpers' own modes protect the files."""
    previous = os.umask(0)
    yield
    os.umask(previous)
