"""`nervenbahn person erase`: crypto-shred a person and reach every file that names them.

The events keep the person's data sealed under their own key; destroying the key erases it
there (domain.personal_data). What the installation wrote in clear outside the event store is
reached here, in this order, while the person's data still opens:

1. the connectors (`ConnectorRuntime.erase_person`): the payments sink rewrites the pain.001
   files that pay the person, the population-register source deletes processed deliveries
   that name them (one not processed yet is reported, not deleted);
2. the key is destroyed, and the key store asked whether an old copy of it may still lie on
   disk (a SQLite write-ahead log a reader keeps from being emptied);
3. every file under the store folder is searched for the person's AHVN13 (with and without
   dots): a file that still holds it is reported as not reached.

Unknown ids are refused before anything is written. Where a place could not be reached the
report says which and why; the command exits non-zero, and running it again (once the cause is
removed) reaches what is left. See docs/privacy.md for every place personal data lives.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import structlog

from connectors.runtime import ConnectorRuntime
from domain.errors import InvalidCommandError
from domain.personal_data import ErasedFile, ErasureSubject
from domain.service import CaseService
from nervenbahn.config import Settings
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


def erase_person(settings: Settings, service: CaseService, person_id: UUID) -> ErasureReport:
    """Erase the person everywhere this installation holds their data (see the module)."""
    if not service.vault.knows(person_id):
        raise InvalidCommandError(
            "erase", [("person_id", f"no person {person_id} is recorded in this store")]
        )
    subject = ErasureSubject.of(service.person(person_id), person_id)
    files = _connectors_erase(settings, service, subject)
    existed = service.erase_person(person_id)
    key_left = service.vault.keystore.copies_left()
    files += [
        ErasedFile(str(path), "not reached", "still holds the person's AHVN13 in clear")
        for path in files_naming(store_folder(settings.store), subject)
    ]
    report = ErasureReport(person_id, existed, key_left, files)
    log.info("erasure done" if report.complete else "erasure incomplete",
             person_id=str(person_id), files=[(f.path, f.outcome) for f in files],
             key_left=key_left is not None)
    return report


def files_naming(folder: Path, subject: ErasureSubject) -> list[Path]:
    """Every file under `folder` whose bytes hold the subject's AHVN13 (with or without
    dots); none if the AHVN13 is not known (the key was destroyed before)."""
    needles = [text.encode("ascii") for text in subject.ahvn13_forms()]
    if not needles or not folder.is_dir():
        return []
    return [path for path in sorted(folder.rglob("*"))
            if path.is_file() and not path.is_symlink() and _holds(path, needles)]


def _holds(path: Path, needles: list[bytes]) -> bool:
    try:
        with path.open("rb") as handle:
            if path.stat().st_size == 0:
                return False
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as content:
                return any(content.find(needle) >= 0 for needle in needles)
    except OSError as exc:  # vanished or unreadable: not ours to judge
        log.warning("file not searched", file=str(path), error=str(exc))
        return False


def _connectors_erase(
    settings: Settings, service: CaseService, subject: ErasureSubject
) -> list[ErasedFile]:
    try:
        connectors = ConnectorRuntime.from_settings(settings, service)
    except Exception as exc:  # the key is destroyed all the same; the gap is reported
        return [ErasedFile("connectors", "not reached", f"{type(exc).__name__}: {exc}")]
    try:
        return connectors.erase_person(subject)
    finally:
        connectors.close()
