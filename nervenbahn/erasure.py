"""`nervenbahn person erase`: crypto-shred a person and reach every file that names them.

The events keep the person's data sealed under their own key; destroying the key erases it
there (domain.personal_data). What the installation wrote in clear outside the event store is
reached here, in this order, while the person's data still opens:

1. the connectors (`ConnectorHost.erase_person`): the payments sink rewrites the pain.001
   files that pay the person, the population-register source deletes processed deliveries
   that name them (one not processed yet is reported, not deleted);
2. the key is destroyed, and the key store asked whether an old copy of it may still lie on
   disk (a SQLite write-ahead log a reader keeps from being emptied);
3. every file under the store folder is searched for the person's AHVN13 (with and without
   dots): a file that still holds it, and anything that could not be searched (a folder that
   cannot be listed, a file that cannot be read, a FIFO, a link to a folder), is reported as
   not reached.

Unknown ids are refused before anything is written. Where a place could not be reached the
report says which and why; the command exits non-zero, and running it again (once the cause is
removed) reaches what is left. See docs/privacy.md for every place personal data lives.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import structlog

from domain.errors import InvalidCommandError
from domain.personal_data import ErasedFile, ErasureSubject
from nervenbahn.container import Container
from nervenbahn.paths import store_folder

__all__ = ["ErasureReport", "erase_person", "files_naming"]

log = structlog.get_logger("nervenbahn.erasure")


@dataclass(frozen=True)
class ErasureReport:
    """What `person erase` did: the key, and every file it touched or could not reach."""

    person_id: UUID
    key_existed: bool
    """False if the key was destroyed before (this is a second erasure)."""
    key_left: str | None
    """Where an old copy of the key may still be on disk, and what to do; None if nowhere."""
    files: list[ErasedFile] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True if the key is gone from disk and every file was reached."""
        return self.key_left is None and all(f.reached for f in self.files)

    def places(self) -> list[ErasedFile]:
        """The key and the files, each with what was done, for the table and --json."""
        if self.key_left is not None:
            key = ErasedFile("data key", "not reached", "destroyed, but " + self.key_left)
        elif self.key_existed:
            key = ErasedFile("data key", "destroyed", "the sealed data no longer opens")
        else:
            key = ErasedFile("data key", "destroyed", "destroyed before (a second erasure)")
        return [key, *self.files]


def erase_person(container: Container, person_id: UUID) -> ErasureReport:
    """Erase the person everywhere this installation holds their data (see the module)."""
    settings, service = container.settings, container.service
    if not service.vault.knows(person_id):
        raise InvalidCommandError(
            "erase", [("person_id", f"no person {person_id} is recorded in this store")]
        )
    # a case's member, or else an applicant known only to the benefits store (a pensioner)
    person = service.person(person_id)
    if person is None:
        person = container.benefits.person(person_id)
    subject = ErasureSubject.of(person, person_id)
    files = _connectors_erase(container, subject)
    existed = service.erase_person(person_id)
    key_left = service.vault.keystore.copies_left()
    files += files_naming(store_folder(settings.store), subject)
    report = ErasureReport(person_id, existed, key_left, files)
    log.info("erasure done" if report.complete else "erasure incomplete",
             person_id=str(person_id), files=[(f.path, f.outcome) for f in files],
             key_left=key_left is not None)
    return report


def files_naming(folder: Path, subject: ErasureSubject) -> list[ErasedFile]:
    """Every place under `folder` that may still hold the subject's AHVN13 (with or without
    dots) in clear, each `not reached` with the reason: a file whose bytes hold it, and
    whatever could not be searched — a folder that cannot be listed, a file that cannot be
    read, a FIFO, socket or device, a link to a folder (not followed). Nothing unsearched is
    taken as clean. A dangling link holds no bytes and a file that vanished during the search
    is gone: neither is listed. None at all if the AHVN13 is not known (the key was destroyed
    before)."""
    needles = [text.encode("ascii") for text in subject.ahvn13_forms()]
    if not needles or not folder.is_dir():
        return []
    found: list[ErasedFile] = []

    def unlisted(exc: OSError) -> None:
        found.append(_unreached(exc.filename, f"folder cannot be listed: {_reason(exc)}"))

    for root, folders, names in os.walk(folder, onerror=unlisted):
        here = Path(root)
        folders.sort()
        for name in folders:
            if (here / name).is_symlink():
                found.append(_unreached(here / name, "a link to a folder: not followed, not "
                                        "searched (search its target, or remove the link)"))
        for name in sorted(names):
            place = _searched(here / name, needles)
            if place is not None:
                found.append(place)
    return found


def _searched(path: Path, needles: list[bytes]) -> ErasedFile | None:
    """`not reached` if the file (or the file a link points to) holds a needle or cannot be
    searched; None if it was searched and holds none, or holds no bytes."""
    try:
        info = path.stat()  # through a link: what a reader of the path would read
    except FileNotFoundError:
        return None  # vanished, or a dangling link
    except OSError as exc:
        return _unreached(path, f"cannot be examined: {_reason(exc)}")
    if not stat.S_ISREG(info.st_mode):
        return _unreached(path, f"{_kind(info.st_mode)}, not a regular file: cannot be searched")
    try:
        holds = _holds(path, needles)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _unreached(path, f"cannot be read, not searched: {_reason(exc)}")
    return _unreached(path, "still holds the person's AHVN13 in clear") if holds else None


def _holds(path: Path, needles: list[bytes]) -> bool:
    """True if the regular file's bytes hold a needle; OSError if it cannot be read (never
    blocks: opened without waiting, in case a FIFO took the file's place meanwhile)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        size = os.fstat(descriptor).st_size
        if size == 0:
            return False
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as content:
            return any(content.find(needle) >= 0 for needle in needles)


def _unreached(path: Path | str, detail: str) -> ErasedFile:
    log.warning("file not reached by erasure", file=str(path), reason=detail)
    return ErasedFile(str(path), "not reached", detail)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _kind(mode: int) -> str:
    kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a device",
             stat.S_ISBLK: "a device", stat.S_ISDIR: "a folder"}
    return next((name for test, name in kinds.items() if test(mode)), "a special file")


def _connectors_erase(container: Container, subject: ErasureSubject) -> list[ErasedFile]:
    try:
        connectors = container.connector_host(bus=False)
    except Exception as exc:  # the key is destroyed all the same; the gap is reported
        return [ErasedFile("connectors", "not reached", f"{type(exc).__name__}: {exc}")]
    try:
        return connectors.erase_person(subject)
    finally:
        connectors.close()
