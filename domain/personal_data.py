"""Personal data of household members, and its protection at rest.

Names, AHVN13, birth date and address never reach the event store in clear: each person has
a data key of their own, and `PersonalDataVault` encrypts that person's data with it (AES-GCM,
the person id as associated data). Data keys are stored wrapped by a master key in a
`KeyStore`. Erasing a person destroys the data key (crypto-shredding): the events stay, their
history still replays, and the person's fields read as erased.
"""

from __future__ import annotations

import base64
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from stdnum.ch import ssn
from stdnum.exceptions import ValidationError

from domain.errors import DomainError

__all__ = [
    "ERASED",
    "ErasedFile",
    "ErasedPersonalData",
    "ErasureSubject",
    "KeyStore",
    "MasterKeyError",
    "MemoryKeyStore",
    "PersonErasedError",
    "PersonalData",
    "PersonalDataCorruptError",
    "PersonalDataVault",
    "SealedPersonalData",
    "normalise_ahvn13",
]

ERASED = "[erased]"
_NONCE_BYTES = 12


class MasterKeyError(DomainError):
    """The master key is missing, malformed or not the one the data keys were wrapped with."""


class PersonalDataCorruptError(DomainError):
    """Sealed personal data does not decrypt: it was altered or belongs to another person."""


class PersonErasedError(DomainError):
    """The person's data was erased; it cannot be recorded again under the same person id."""


def normalise_ahvn13(value: str) -> str:
    """Return an AHVN13 in its printed form `756.XXXX.XXXX.XC`, or raise ValueError.

    Accepts the number with or without dots; checks the 756 prefix and the EAN-13 check digit.
    """
    if _AHVN13_PLAIN.fullmatch(value):
        # The common forms, checked here (~2 µs; python-stdnum takes ~40 µs): stdnum only
        # for the others and to name what is wrong.
        digits = value.replace(".", "")
        if _ean13_check_digit(digits[:12]) == digits[12]:
            return f"{digits[:3]}.{digits[3:7]}.{digits[7:11]}.{digits[11:]}"
    try:
        return str(ssn.format(ssn.validate(value)))
    except ValidationError as exc:
        raise ValueError(f"not a valid AHVN13 (756.XXXX.XXXX.XC with check digit): {exc}") from exc


_AHVN13_PLAIN = re.compile(r"756\.[0-9]{4}\.[0-9]{4}\.[0-9]{2}|756[0-9]{10}")


def _ean13_check_digit(digits: str) -> str:
    """The EAN-13 check digit of 12 digits: weights 1, 3, 1, 3, … from the left."""
    total = sum(map(int, digits[0::2])) + 3 * sum(map(int, digits[1::2]))
    return str((10 - total) % 10)


@dataclass(frozen=True, repr=False)
class PersonalData:
    """Identifying data of one household member; only ever stored encrypted.

    Its repr shows the person id only, so that it cannot leak into a log or an error message.
    """

    person_id: UUID
    given_name: str
    family_name: str
    ahvn13: str
    birth_date: date
    street: str
    postal_code: str
    town: str

    @property
    def is_erased(self) -> bool:
        """False: these are the person's data."""
        return False

    def __repr__(self) -> str:
        return f"PersonalData(person_id={self.person_id!s}, ...)"

    def to_plain(self) -> dict[str, str]:
        """The fields as strings, for display."""
        return {
            "person_id": str(self.person_id),
            "given_name": self.given_name,
            "family_name": self.family_name,
            "ahvn13": self.ahvn13,
            "birth_date": self.birth_date.isoformat(),
            "street": self.street,
            "postal_code": self.postal_code,
            "town": self.town,
        }


@dataclass(frozen=True)
class ErasedPersonalData:
    """What remains of a person after erasure: the id only."""

    person_id: UUID

    @property
    def is_erased(self) -> bool:
        """True: the data key was destroyed."""
        return True

    def to_plain(self) -> dict[str, str]:
        """Every personal field shown as erased."""
        fields = ("given_name", "family_name", "ahvn13", "birth_date", "street", "postal_code")
        return {"person_id": str(self.person_id)} | dict.fromkeys((*fields, "town"), ERASED)


_FIELDS = frozenset(
    {"given_name", "family_name", "ahvn13", "birth_date", "street", "postal_code", "town"}
)


class SealedPersonalData:
    """A person's data as loaded from the store: decrypted only when it is read.

    Loading a case decrypts nothing; `open()` (or reading a field, or `to_plain()`) does,
    once. Written back (in a snapshot) it stays sealed as it was stored.
    """

    __slots__ = ("_opened", "_sealed", "_vault", "person_id")

    def __init__(self, sealed: dict[str, str], vault: PersonalDataVault) -> None:
        self.person_id = UUID(sealed["person_id"])
        self._sealed = sealed
        self._vault = vault
        self._opened: PersonalData | ErasedPersonalData | None = None

    @property
    def sealed(self) -> dict[str, str]:
        """The stored form, unchanged."""
        return self._sealed

    def open(self) -> PersonalData | ErasedPersonalData:
        """Decrypt (once): the person's data, or what remains of an erased person."""
        if self._opened is None:
            self._opened = self._vault.decrypt(self._sealed)
        return self._opened

    @property
    def is_erased(self) -> bool:
        """True if the person's data key was destroyed."""
        return self.open().is_erased

    def to_plain(self) -> dict[str, str]:
        """The fields as strings for display (erased fields as "[erased]")."""
        return self.open().to_plain()

    def __getattr__(self, name: str) -> object:
        if name in _FIELDS:
            return getattr(self.open(), name)
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SealedPersonalData):
            return self.open() == other.open()
        if isinstance(other, PersonalData | ErasedPersonalData):
            return self.open() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __copy__(self) -> SealedPersonalData:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> SealedPersonalData:
        return self  # immutable as far as anyone can tell; shares the vault

    def __repr__(self) -> str:
        return f"SealedPersonalData(person_id={self.person_id!s})"


@dataclass(frozen=True, repr=False)
class ErasureSubject:
    """Who is being erased, and what identifies them in a file written outside the store.

    Taken from the person's data before their key is destroyed (afterwards nothing opens it);
    empty identifiers when the key was destroyed already (a second `person erase`). Its repr
    shows the person id only.
    """

    person_id: UUID
    ahvn13: str = ""
    """The AHVN13 in its printed form (756.XXXX.XXXX.XC), "" if unknown."""

    @classmethod
    def of(
        cls, person: PersonalData | ErasedPersonalData | None, person_id: UUID
    ) -> ErasureSubject:
        """The subject of a person's data (or of an id whose data is gone)."""
        if isinstance(person, PersonalData):
            return cls(person_id, person.ahvn13)
        return cls(person_id)

    def ahvn13_forms(self) -> tuple[str, ...]:
        """The AHVN13 as printed and as 13 digits (eCH-0044 `vn`); none if unknown."""
        return (self.ahvn13, self.ahvn13.replace(".", "")) if self.ahvn13 else ()

    def identifiers(self) -> tuple[str, ...]:
        """Texts that name this person and no other: the AHVN13 forms, and the person id
        (as eCH-0044 local id, plain and as hex)."""
        return (*self.ahvn13_forms(), str(self.person_id), self.person_id.hex)

    def __repr__(self) -> str:
        return f"ErasureSubject(person_id={self.person_id!s})"


@dataclass(frozen=True)
class ErasedFile:
    """What erasure did to one file (or place) that held a person's data in clear."""

    path: str
    outcome: str
    """"deleted", "rewritten", or "not reached" (the erasure is incomplete)."""
    detail: str = ""

    @property
    def reached(self) -> bool:
        """False if the person's data may still be in this place."""
        return self.outcome != "not reached"


class KeyStore(ABC):
    """Port: durable storage of wrapped per-person data keys, with tombstones for erasure."""

    @abstractmethod
    def load(self, person_id: UUID) -> bytes | None:
        """The wrapped data key of the person, or None if there is none (or it was erased)."""

    @abstractmethod
    def store_new(
        self, person_ids: Sequence[UUID], make_key: Callable[[UUID], bytes]
    ) -> tuple[list[UUID], list[UUID]]:
        """Give each of `person_ids` without a key the wrapped key `make_key(person_id)` makes,
        unless one of those without a key was erased: then store nothing. A person who has a
        key already is marked as found: the write that asked may now seal with that key, so
        `discard_many` leaves it. Returns the persons whose keys this call stored (in the
        order given, once each) and the erased ones. One transaction; `make_key` may be
        called for every person."""

    @abstractmethod
    def discard_many(self, person_ids: Iterable[UUID]) -> None:
        """Remove keys created for a write that failed (no tombstone: nothing was recorded),
        unless another write found them since (`store_new`): it may have sealed with them."""

    @abstractmethod
    def destroy(self, person_id: UUID) -> bool:
        """Destroy the person's key beyond recovery and leave a tombstone; True if one existed."""

    @abstractmethod
    def is_erased(self, person_id: UUID) -> bool:
        """True if the person's key was destroyed."""

    def copies_left(self) -> str | None:
        """Where an old copy of a destroyed key may still lie on disk (a journal that could
        not be emptied), and what to do about it; None if nowhere. Tries once more to remove
        such copies before answering."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


class MemoryKeyStore(KeyStore):
    """Wrapped data keys in a dict, erased persons in a set of tombstones: nothing durable (an
    import's worker keeps the keys it makes here for the importer to store; tests)."""

    def __init__(self) -> None:
        self.keys: dict[UUID, bytes] = {}
        self.tombstones: set[UUID] = set()
        self.found: set[UUID] = set()
        """Persons whose keys a later `store_new` found (never discarded)."""

    def load(self, person_id: UUID) -> bytes | None:
        """The wrapped key, or None when there is none or it was destroyed."""
        return self.keys.get(person_id)

    def store_new(
        self, person_ids: Sequence[UUID], make_key: Callable[[UUID], bytes]
    ) -> tuple[list[UUID], list[UUID]]:
        """New keys for those without one, none if one of them was erased (see the port)."""
        wanted = list(dict.fromkeys(person_ids))
        without = [person_id for person_id in wanted if person_id not in self.keys]
        erased = [person_id for person_id in without if person_id in self.tombstones]
        if erased:
            return [], erased
        self.found.update(person_id for person_id in wanted if person_id in self.keys)
        self.keys.update((person_id, make_key(person_id)) for person_id in without)
        return without, []

    def discard_many(self, person_ids: Iterable[UUID]) -> None:
        """Forget keys created for a write that failed, unless found since; no tombstone."""
        for person_id in person_ids:
            if person_id not in self.found:
                self.keys.pop(person_id, None)

    def destroy(self, person_id: UUID) -> bool:
        """Drop the key and leave a tombstone; True if there was a key."""
        self.tombstones.add(person_id)
        return self.keys.pop(person_id, None) is not None

    def is_erased(self, person_id: UUID) -> bool:
        """True once the person's key was destroyed."""
        return person_id in self.tombstones

    def close(self) -> None:
        """Nothing to release."""


class PersonalDataVault:
    """Encrypts and decrypts personal data with per-person keys held in a `KeyStore`."""

    def __init__(self, keystore: KeyStore, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise MasterKeyError("the master key must be 32 bytes (256-bit AES)")
        self._keystore = keystore
        self._master = AESGCM(master_key)
        self._master_key = master_key

    def derive_key(self, purpose: str) -> bytes:
        """A 32-byte key for one purpose (e.g. the snapshot MAC), derived from the master key
        with HKDF-SHA256: no key file of its own, and it changes with the master key."""
        info = f"nervenbahn derived key: {purpose}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
            self._master_key
        )

    @property
    def keystore(self) -> KeyStore:
        """The key store this vault keeps its data keys in."""
        return self._keystore

    def with_keystore(self, keystore: KeyStore) -> PersonalDataVault:
        """A vault with the same master key over another key store (an import's worker seals
        new persons with keys it makes, for the importer to store)."""
        return PersonalDataVault(keystore, self._master_key)

    def ensure_keys(self, person_ids: Iterable[UUID]) -> list[UUID]:
        """Give every listed person a data key if they have none; refuse erased persons.

        Returns the persons whose keys this call stored, for `discard` if the write that
        needed them fails (a key another write found meanwhile stays: `KeyStore.discard_many`).
        """
        created, erased = self._keystore.store_new(list(dict.fromkeys(person_ids)),
                                                    self._new_wrapped_key)
        if erased:
            raise PersonErasedError(f"person {erased[0]} was erased and cannot be recorded again")
        return created

    def _new_wrapped_key(self, person_id: UUID) -> bytes:
        return self._wrap(person_id, AESGCM.generate_key(bit_length=256))

    def discard(self, person_ids: list[UUID]) -> None:
        """Remove keys that `ensure_keys` just created for a write that then failed (those
        another write found meanwhile stay)."""
        if person_ids:
            self._keystore.discard_many(person_ids)

    def encrypt(self, data: PersonalData) -> dict[str, str]:
        """Encrypt a person's fields with their data key (created on first use)."""
        key = self._data_key(data.person_id)
        if key is None:
            self.ensure_keys([data.person_id])
            key = self._data_key(data.person_id)
        assert key is not None
        plain = data.to_plain()
        del plain["person_id"]
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, json.dumps(plain).encode(), data.person_id.bytes)
        return {"person_id": data.person_id.hex, "sealed": _b64(nonce + sealed)}

    def decrypt(self, stored: dict[str, str]) -> PersonalData | ErasedPersonalData:
        """Decrypt stored fields; an erased person's data comes back as `ErasedPersonalData`."""
        person_id = UUID(stored["person_id"])
        key = self._data_key(person_id)
        if key is None:
            return ErasedPersonalData(person_id)
        blob = base64.b64decode(stored["sealed"])
        try:
            opened = AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], person_id.bytes)
        except InvalidTag as exc:
            raise PersonalDataCorruptError(
                f"sealed personal data of person {person_id} does not decrypt: "
                "it was altered or sealed for another person"
            ) from exc
        plain = json.loads(opened)
        plain["birth_date"] = date.fromisoformat(plain["birth_date"])
        return PersonalData(person_id=person_id, **plain)

    def erase(self, person_id: UUID) -> bool:
        """Destroy the person's data key (crypto-shredding); True if there was one."""
        return self._keystore.destroy(person_id)

    def knows(self, person_id: UUID) -> bool:
        """True if the person has a data key or had one (erased)."""
        return self._keystore.load(person_id) is not None or self._keystore.is_erased(person_id)

    def seal_fields(self, person_id: UUID, purpose: bytes, fields: dict[str, str]) -> str | None:
        """Encrypt further fields of a person (e.g. a payout account) with their data key, bound
        to `purpose`; None if the person has no key (erased, or never recorded)."""
        key = self._data_key(person_id)
        if key is None:
            return None
        nonce = os.urandom(_NONCE_BYTES)
        blob = AESGCM(key).encrypt(nonce, json.dumps(fields).encode(), purpose + person_id.bytes)
        return base64.b64encode(nonce + blob).decode("ascii")

    def open_fields(self, person_id: UUID, purpose: bytes, sealed: str) -> dict[str, str] | None:
        """Decrypt what `seal_fields` sealed; None once the person was erased."""
        key = self._data_key(person_id)
        if key is None:
            return None
        blob = base64.b64decode(sealed)
        try:
            plain = AESGCM(key).decrypt(
                blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], purpose + person_id.bytes
            )
        except InvalidTag as exc:
            raise PersonalDataCorruptError(
                f"fields sealed for person {person_id} do not decrypt"
            ) from exc
        opened: dict[str, str] = json.loads(plain)
        return opened

    def _data_key(self, person_id: UUID) -> bytes | None:
        wrapped = self._keystore.load(person_id)
        if wrapped is None:
            return None
        try:
            return self._master.decrypt(
                wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], person_id.bytes
            )
        except InvalidTag as exc:
            raise MasterKeyError(
                "a data key cannot be unwrapped: the master key is not the one it was wrapped with"
            ) from exc

    def _wrap(self, person_id: UUID, data_key: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, data_key, person_id.bytes)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
