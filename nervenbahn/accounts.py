"""The web application's accounts (`nervenbahn.web`), sign-ins and sessions, in one SQLite file
(NERVENBAHN_WEB_USERS, default `<store folder>/web-users.db`).

- A password is kept only as its argon2id hash (`argon2-cffi`'s defaults, RFC 9106); a sign-in
  with an unknown name verifies against a dummy hash, so the answer's time does not tell which
  names exist, and the page says the same for both.
- After `lockout_attempts` failed sign-ins in a row an account is locked for `lockout_minutes`;
  every sign-in, failed or not, and every lock is a row of `sign_ins` and a log line. A name
  that is no account is locked the same way (counted in `sign_ins` under a keyed hash of the
  name, never the text typed: it may be a password or an AHV number), so that the lockout does
  not tell which names exist.
- A session is 32 random bytes in a cookie; the file holds its SHA-256 only (as the API keys'
  file), its CSRF token, and when it was last used: it ends after `session_minutes` without a
  request, at sign-out, and when its user is disabled or their password is reset; expired
  sessions are removed at each sign-in, also those never presented again.
- Who created, disabled or reset an account is recorded (the operating-system user of the
  command line, as `created_by`), so an account is attributable.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from domain.errors import NervenbahnError
from nervenbahn.private import private_file, private_umask
from nervenbahn.store_opening import sqlite_turn

__all__ = [
    "LANGUAGES",
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "Language",
    "Role",
    "SignIn",
    "User",
    "UserError",
    "UserStore",
    "WebSession",
]

log = structlog.get_logger("nervenbahn.web.users")

Role = Literal["caseworker", "supervisor", "branch_office", "fund_officer", "canton", "auditor"]
ROLES: tuple[str, ...] = get_args(Role)
Language = Literal["de", "fr"]
LANGUAGES: tuple[str, ...] = get_args(Language)
SESSION_LIFETIME = timedelta(hours=12)
"""A session ends this long after its sign-in however busy it is (a working day and more)."""
SIGN_IN_RETENTION = timedelta(days=365)
"""How long a sign-in attempt is kept (removed when the file is opened): a year, as the access
log at least (Art. 4 para. 5 DSV / OPDo), for an incident's investigation."""
MIN_PASSWORD_LENGTH = 12
"""NIST SP 800-63B asks for at least 8; 12 is the Swiss federal administration's minimum."""
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    organisation TEXT NOT NULL,
    language TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    failed_sign_ins INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(username);
CREATE TABLE IF NOT EXISTS file_keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sign_ins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    username TEXT NOT NULL,
    outcome TEXT NOT NULL
);
"""


class UserError(NervenbahnError):
    """An account operation was refused: `field` names what was wrong, the message why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class User:
    """An account: who, which role in which organisation, which language."""

    username: str
    display_name: str
    role: Role
    organisation: str
    language: Language
    disabled: bool
    failed_sign_ins: int
    locked_until: datetime | None
    created_at: datetime
    created_by: str

    def locked(self, now: datetime) -> bool:
        """Whether the account is locked at `now`."""
        return self.locked_until is not None and now < self.locked_until


@dataclass(frozen=True)
class WebSession:
    """A signed-in session: its user and the token every form must carry back."""

    user: User
    csrf_token: str


@dataclass(frozen=True)
class SignIn:
    """A sign-in's outcome: `ok` (with the new session's cookie value and the session),
    `refused` (wrong name or password: the same answer), `locked` (until when) or
    `disabled`."""

    outcome: Literal["ok", "refused", "locked", "disabled"]
    token: str | None = None
    session: WebSession | None = None
    locked_until: datetime | None = None


class UserStore:
    """Accounts and sessions in one SQLite file; safe to share between threads."""

    def __init__(
        self, path: Path, *, session_minutes: int = 30, lockout_attempts: int = 5,
        lockout_minutes: int = 15, hasher: PasswordHasher | None = None,
    ) -> None:
        self.path = path
        self.session_ttl = timedelta(minutes=session_minutes)
        self.lockout_attempts = lockout_attempts
        self.lockout = timedelta(minutes=lockout_minutes)
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        self._lock = threading.Lock()
        private_file(path)
        # One process at a time opens the file: two `serve` starting together on a new store
        # both switched it to WAL, and one failed with "database is locked" (exit 70; found by
        # tests/chaos/test_two_serves.py).
        with sqlite_turn(path):
            with private_umask():  # the WAL and shared-memory files too
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            with self._transaction() as db:
                db.execute("INSERT OR IGNORE INTO file_keys VALUES ('unknown_names', ?)",
                           (secrets.token_hex(32),))
                db.execute("DELETE FROM sign_ins WHERE at < ?",
                           ((datetime.now(UTC) - SIGN_IN_RETENTION).isoformat(),))
            (key,) = self._db.execute(
                "SELECT value FROM file_keys WHERE name = 'unknown_names'").fetchone()
        self._name_key = bytes.fromhex(key)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    # --- accounts ------------------------------------------------------------------------------

    def add(
        self, username: str, *, role: str, organisation: str, password: str, now: datetime,
        by: str, display_name: str | None = None, language: str = "de",
    ) -> User:
        """A new account; UserError naming the field for a bad name, role, language or
        password, or a name already taken."""
        name = _checked_name(username)
        if role not in ROLES:
            raise UserError("role", f"{role!r} is not one of {', '.join(ROLES)}")
        if language not in LANGUAGES:
            raise UserError("language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
        if not organisation.strip():
            raise UserError("organisation", "must not be empty")
        hashed = self._hasher.hash(_checked_password(password))
        stamp = now.isoformat()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone():
                raise UserError("username", f"{name!r} exists already")
            db.execute(
                "INSERT INTO users (username, display_name, role, organisation, language, "
                "password_hash, created_at, created_by, changed_at, changed_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, (display_name or name).strip(), role, organisation.strip(), language,
                 hashed, stamp, by, stamp, by),
            )
        log.info("web user added", username=name, role=role, organisation=organisation, by=by)
        return self.get(name)

    def get(self, username: str) -> User:
        """The account; UserError if there is none."""
        row = self._db.execute(_SELECT_USERS + " WHERE username = ?", (username,)).fetchone()
        if row is None:
            raise UserError("username", f"no user {username!r}")
        return _user(row)

    def users(self) -> list[User]:
        """Every account, by name."""
        return [_user(r) for r in self._db.execute(_SELECT_USERS + " ORDER BY username")]

    def disable(self, username: str, *, now: datetime, by: str) -> User:
        """Disable an account and end its sessions."""
        self.get(username)
        with self._transaction() as db:
            db.execute("UPDATE users SET disabled = 1, changed_at = ?, changed_by = ? "
                       "WHERE username = ?", (now.isoformat(), by, username))
            db.execute("DELETE FROM sessions WHERE username = ?", (username,))
        log.info("web user disabled", username=username, by=by)
        return self.get(username)

    def reset(self, username: str, password: str, *, now: datetime, by: str,
              enable: bool = False) -> User:
        """Set a new password, unlock the account, end its sessions; a disabled account stays
        disabled (a leaver's account does not come back with a reset) unless `enable`."""
        self.get(username)
        hashed = self._hasher.hash(_checked_password(password))
        with self._transaction() as db:
            db.execute(
                "UPDATE users SET password_hash = ?, failed_sign_ins = 0, "
                "locked_until = NULL, changed_at = ?, changed_by = ? WHERE username = ?",
                (hashed, now.isoformat(), by, username))
            if enable:
                db.execute("UPDATE users SET disabled = 0 WHERE username = ?", (username,))
            db.execute("DELETE FROM sessions WHERE username = ?", (username,))
        log.info("web user reset", username=username, by=by)
        return self.get(username)

    def set_language(self, username: str, language: str) -> None:
        """The user's own choice of language."""
        if language not in LANGUAGES:
            raise UserError("language", f"{language!r} is not one of {', '.join(LANGUAGES)}")
        with self._transaction() as db:
            db.execute("UPDATE users SET language = ? WHERE username = ?", (language, username))

    # --- signing in and sessions ---------------------------------------------------------------

    def sign_in(self, username: str, password: str, *, now: datetime) -> SignIn:
        """Check a name and password; on success a new session. Every attempt is recorded."""
        name = username.strip().lower()
        row = self._db.execute("SELECT password_hash FROM users WHERE username = ?",
                               (name,)).fetchone()
        verified = self._verify(row[0] if row else self._dummy_hash, password) and row is not None
        if row is None:
            return self._failed_unknown(name, now)
        user = self.get(name)
        if user.disabled:  # said only to who knows the password: names are not probed
            self._record(name, "disabled", now)
            return SignIn("disabled" if verified else "refused")
        if user.locked(now):
            self._record(name, "locked", now)
            return SignIn("locked", locked_until=user.locked_until)
        if not verified:
            return self._failed(user, now)
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._transaction() as db:
            db.execute("UPDATE users SET failed_sign_ins = 0, locked_until = NULL "
                       "WHERE username = ?", (name,))
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                       (_digest(token), name, csrf, now.isoformat(), now.isoformat()))
            self._purge_expired(db, now)
        self._record(name, "ok", now)
        return SignIn("ok", token=token, session=WebSession(self.get(name), csrf))

    def session(self, token: str, *, now: datetime) -> WebSession | None:
        """The live session of a cookie's token (its last use moved to `now`), or None: unknown,
        expired (idle too long, or signed in more than `SESSION_LIFETIME` ago: then removed),
        or its user disabled."""
        digest = _digest(token)
        row = self._db.execute(
            "SELECT username, csrf_token, last_seen, created_at FROM sessions "
            "WHERE token_sha256 = ?", (digest,)).fetchone()
        if row is None:
            return None
        username, csrf, last_seen, created_at = row
        if (now - datetime.fromisoformat(last_seen) > self.session_ttl
                or now - datetime.fromisoformat(created_at) > SESSION_LIFETIME):
            self.end_session(token)
            return None
        user = self.get(username)
        if user.disabled:
            return None
        with self._transaction() as db:
            db.execute("UPDATE sessions SET last_seen = ? WHERE token_sha256 = ?",
                       (now.isoformat(), digest))
        return WebSession(user, csrf)

    def _purge_expired(self, db: sqlite3.Connection, now: datetime) -> None:
        """Remove every session expired by `now`, also those never presented again (a
        browser closed without signing out): the file keeps no more than it needs."""
        expired = [(digest,) for digest, last_seen in db.execute(
            "SELECT token_sha256, last_seen FROM sessions")
            if now - datetime.fromisoformat(last_seen) > self.session_ttl]
        db.executemany("DELETE FROM sessions WHERE token_sha256 = ?", expired)

    def end_session(self, token: str) -> None:
        """Sign out: the session is gone."""
        with self._transaction() as db:
            db.execute("DELETE FROM sessions WHERE token_sha256 = ?", (_digest(token),))

    def sign_ins(self, username: str) -> list[tuple[datetime, str]]:
        """Every recorded sign-in attempt of a name (an account's, or one typed that is none,
        found by its keyed hash): (when, outcome), oldest first."""
        name = username.strip().lower()
        if self._db.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone() is None:
            name = self._unknown_name(name)
        return self._sign_ins_of(name)

    def _sign_ins_of(self, username: str) -> list[tuple[datetime, str]]:
        """Every recorded sign-in attempt of a name: (when, outcome), oldest first."""
        return [(datetime.fromisoformat(at), outcome) for at, outcome in self._db.execute(
            "SELECT at, outcome FROM sign_ins WHERE username = ? ORDER BY id", (username,))]

    # --- internals -----------------------------------------------------------------------------

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self._hasher.verify(hashed, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _failed(self, user: User, now: datetime) -> SignIn:
        """Count a failure in the file itself (sign-ins at the same time each count: none
        overwrites another's), and lock the account at `lockout_attempts`."""
        with self._transaction() as db:
            (failures,) = db.execute(
                "UPDATE users SET failed_sign_ins = failed_sign_ins + 1 WHERE username = ? "
                "RETURNING failed_sign_ins", (user.username,)).fetchone()
            locked_until = now + self.lockout if failures >= self.lockout_attempts else None
            if locked_until is not None:
                db.execute("UPDATE users SET failed_sign_ins = 0, locked_until = ? "
                           "WHERE username = ?", (locked_until.isoformat(), user.username))
        return self._refused(user.username, now, failures, locked_until, known=True)

    def _failed_unknown(self, name: str, now: datetime) -> SignIn:
        """A name that is no account fails, and locks, as an account does (after
        `lockout_attempts` failures since its last lock, for `lockout_minutes`): else the
        lockout would tell which names are accounts. Counted from `sign_ins`, in one
        transaction (sign-ins at the same time each count)."""
        recorded = self._unknown_name(name)
        with self._transaction() as db:
            last_lock = db.execute(
                "SELECT id, at FROM sign_ins WHERE username = ? "
                "AND outcome = 'account locked' ORDER BY id DESC LIMIT 1",
                (recorded,)).fetchone()
            since = 0
            if last_lock is not None:
                since, until = last_lock[0], datetime.fromisoformat(last_lock[1]) + self.lockout
                if now < until:
                    _insert_sign_in(db, recorded, "locked", now)
                    log.info("web sign-in refused", username=recorded, outcome="locked")
                    return SignIn("locked", locked_until=until)
            (failures,) = db.execute(
                "SELECT count(*) + 1 FROM sign_ins WHERE username = ? AND outcome = 'refused' "
                "AND id > ?", (recorded, since)).fetchone()
            locked_until = now + self.lockout if failures >= self.lockout_attempts else None
        return self._refused(recorded, now, failures, locked_until, known=False)

    def _unknown_name(self, name: str) -> str:
        """What is recorded of a name that is no account: a keyed hash (`?` and 24 hex
        digits), never the text typed — it may be a password typed into the wrong field, or an
        AHV number. The key is the file's own (random, made with the file), so the same name
        counts towards its lockout while a search of the file for the text finds nothing."""
        digest = hmac.new(self._name_key, name.encode(), hashlib.sha256).hexdigest()
        return f"?{digest[:24]}"

    def _refused(self, username: str, now: datetime, failures: int,
                 locked_until: datetime | None, *, known: bool) -> SignIn:
        """Record a refused sign-in, and the lock it brought about if it did."""
        self._record(username, "refused", now)
        if locked_until is None:
            return SignIn("refused")
        self._record(username, "account locked", now)
        log.warning("web user locked after failed sign-ins", username=username,
                    attempts=failures, until=locked_until.isoformat(), account_exists=known)
        return SignIn("locked", locked_until=locked_until)

    def _record(self, username: str, outcome: str, now: datetime) -> None:
        with self._transaction() as db:
            _insert_sign_in(db, username, outcome, now)
        if outcome != "ok":
            log.info("web sign-in refused", username=username[:64], outcome=outcome)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


_SELECT_USERS = ("SELECT username, display_name, role, organisation, language, disabled, "
                 "failed_sign_ins, locked_until, created_at, created_by FROM users")


def _insert_sign_in(db: sqlite3.Connection, username: str, outcome: str, now: datetime
                    ) -> None:
    db.execute("INSERT INTO sign_ins (at, username, outcome) VALUES (?, ?, ?)",
               (now.isoformat(), username[:64], outcome))


def _user(row: tuple[object, ...]) -> User:
    (username, display_name, role, organisation, language, disabled, failed, locked_until,
     created_at, created_by) = row
    return User(
        username=str(username), display_name=str(display_name), role=role,  # type: ignore[arg-type]
        organisation=str(organisation), language=language,  # type: ignore[arg-type]
        disabled=bool(disabled), failed_sign_ins=int(str(failed)),
        locked_until=datetime.fromisoformat(str(locked_until)) if locked_until else None,
        created_at=datetime.fromisoformat(str(created_at)), created_by=str(created_by),
    )


def _checked_name(username: str) -> str:
    name = username.strip()
    if not _NAME.fullmatch(name):
        raise UserError("username", f"{username!r} is not 2 to 64 characters of a-z, 0-9, "
                        "'.', '_' or '-' starting with a letter or digit")
    return name


def _checked_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > 1024:
        raise UserError("password", "must be at most 1024 characters long")
    return password


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Compare two tokens in time independent of where they differ."""
    return hmac.compare_digest(a.encode(), b.encode())
