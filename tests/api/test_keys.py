"""API keys: only hashes are stored, scopes are checked against the reference data, a
revocation reaches a running server, and a broken key file is reported clearly."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from domain.reference import load_branch_offices, load_reference_data
from nervenbahn.api.errors import (
    ApiKeyFileError,
    ConsumerExistsError,
    InvalidConsumerNameError,
    InvalidScopeError,
    UnknownConsumerError,
)
from nervenbahn.api.keys import KEY_PREFIX, UNKNOWN_CHANGER, ApiKeyRegistry, KeyChanger
from nervenbahn.api.scopes import Scope, parse_scope
from tests.api.conftest import NOW

OFFICES, REGIONS = load_branch_offices(), load_reference_data().regions


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ("branch_office:akso-olten", Scope("branch_office", "akso-olten")),
        ("region:so-olten", Scope("region", "so-olten")),
        ("canton", Scope("canton")),
        ("auditor", Scope("auditor")),
        (" canton ", Scope("canton")),
    ],
)
def test_scopes_parse(text: str, scope: Scope) -> None:
    assert parse_scope(text, branch_offices=OFFICES, regions=REGIONS) == scope
    assert Scope.from_json(scope.to_json()) == scope


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("branch_office:akso-atlantis", "branch office 'akso-atlantis' does not exist"),
        ("region:so-atlantis", "social region 'so-atlantis' does not exist"),
        ("region:akso-olten", "social region 'akso-olten' does not exist"),
        ("branch_office", "scope 'branch_office' needs an id"),
        ("region:", "scope 'region' needs an id"),
        ("canton:so", "scope 'canton' takes no id"),
        ("auditor:me", "scope 'auditor' takes no id"),
        ("municipality:2581", "unknown scope kind 'municipality'"),
        ("", "unknown scope kind ''"),
    ],
)
def test_bad_scopes_are_refused_naming_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InvalidScopeError) as raised:
        parse_scope(text, branch_offices=OFFICES, regions=REGIONS)

    assert complaint in str(raised.value)


def test_the_file_holds_the_keys_hash_never_the_key(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    key = ApiKeyRegistry(path).add("olten-desk", Scope("branch_office", "akso-olten"), now=NOW)

    stored = json.loads(path.read_text())

    assert key not in path.read_text()
    assert stored == {"consumers": [{
        "name": "olten-desk",
        "key_sha256": hashlib.sha256(key.encode()).hexdigest(),
        "scope": {"kind": "branch_office", "id": "akso-olten"},
        "created_at": "2026-10-01T08:30:00+00:00",
        "created_by": {"identity": "unknown", "actor": None},  # this call names no one
    }], "history": [{
        "at": "2026-10-01T08:30:00+00:00", "action": "added", "consumer": "olten-desk",
        "scope": {"kind": "branch_office", "id": "akso-olten"},
        "by": {"identity": "unknown", "actor": None},
    }]}
    assert path.stat().st_mode & 0o777 == 0o600


def test_additions_and_revocations_are_recorded_with_who_did_them(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    registry = ApiKeyRegistry(path)
    admin = KeyChanger("os:alice@host-1", "admin-so:administrator:so-canton")
    later = NOW + timedelta(hours=2)

    registry.add("olten", Scope("region", "so-olten"), now=NOW, by=admin)
    registry.revoke("olten", now=later, by=KeyChanger("os:bob@host-2"))
    reread = ApiKeyRegistry(path)

    assert reread.consumers() == ()
    assert [(h.at, h.action, h.consumer, str(h.scope), str(h.by)) for h in reread.history()] == [
        (NOW, "added", "olten", "region:so-olten",
         "os:alice@host-1 as admin-so:administrator:so-canton"),
        (later, "revoked", "olten", "region:so-olten", "os:bob@host-2"),
    ]


def test_a_key_file_written_before_changes_were_attributed_reads_as_unknown(
    tmp_path: Path,
) -> None:
    path = tmp_path / "api-keys.json"
    path.write_text(json.dumps({"consumers": [{
        "name": "old", "key_sha256": "0" * 64, "scope": {"kind": "canton"},
        "created_at": "2026-01-01T00:00:00+00:00"}]}))

    registry = ApiKeyRegistry(path)

    (old,) = registry.consumers()
    assert (old.name, old.created_by) == ("old", UNKNOWN_CHANGER)
    assert registry.history() == ()


def test_keys_authenticate_their_own_consumer_only(tmp_path: Path) -> None:
    registry = ApiKeyRegistry(tmp_path / "api-keys.json")
    olten = registry.add("olten", Scope("region", "so-olten"), now=NOW)
    canton = registry.add("canton", Scope("canton"), now=NOW)

    found = [registry.authenticate(key) for key in (olten, canton, olten[:-1], "", "x" * 43)]

    assert [c.name if c else None for c in found] == ["olten", "canton", None, None, None]
    assert len(olten) >= 43 and olten != canton


def test_a_revocation_reaches_a_registry_that_already_read_the_file(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    serving, managing = ApiKeyRegistry(path), ApiKeyRegistry(path)
    key = managing.add("olten", Scope("region", "so-olten"), now=NOW)
    assert serving.authenticate(key) is not None

    managing.revoke("olten")

    assert serving.authenticate(key) is None
    assert serving.consumers() == ()


def test_names_are_unique_and_plain(tmp_path: Path) -> None:
    registry = ApiKeyRegistry(tmp_path / "api-keys.json")
    registry.add("olten", Scope("canton"), now=NOW)

    with pytest.raises(ConsumerExistsError):
        registry.add("olten", Scope("auditor"), now=NOW)
    with pytest.raises(InvalidConsumerNameError):
        registry.add("olten desk; rm", Scope("auditor"), now=NOW)
    with pytest.raises(UnknownConsumerError):
        registry.revoke("basel")


def test_no_file_means_no_consumers(tmp_path: Path) -> None:
    registry = ApiKeyRegistry(tmp_path / "nothing-yet.json")

    assert registry.consumers() == ()
    assert registry.authenticate("anything") is None


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"consumers": [{"name": "x"}]}',
        '{"consumers": [{"name": "x", "key_sha256": "abc", "scope": {"kind": "canton"}, '
        '"created_at": "2026-01-01T00:00:00+00:00"}]}',
        '{"consumers": [{"name": "x", "key_sha256": "' + "0" * 64 + '", '
        '"scope": {"kind": "mayor"}, "created_at": "2026-01-01T00:00:00+00:00"}]}',
    ],
    ids=["not-json", "not-an-object", "fields-missing", "not-a-hash", "unknown-scope"],
)
def test_a_malformed_key_file_is_reported_as_such(tmp_path: Path, content: str) -> None:
    path = tmp_path / "api-keys.json"
    path.write_text(content)

    with pytest.raises(ApiKeyFileError, match="is malformed"):
        ApiKeyRegistry(path).consumers()


def test_no_key_starts_like_a_command_line_option(tmp_path: Path) -> None:
    registry = ApiKeyRegistry(tmp_path / "api-keys.json")
    keys = [registry.add(f"consumer-{n}", Scope("canton"), now=NOW) for n in range(200)]

    assert all(key.startswith(KEY_PREFIX) and not key.startswith("-") for key in keys)
    assert len(set(keys)) == len(keys)
    assert all(registry.authenticate(key).name == f"consumer-{n}"  # type: ignore[union-attr]
               for n, key in enumerate(keys))
