"""Coders who sign in to a served study: their role, a password kept only as a scrypt hash,
and sign-in sessions.

Why in the study file: the team's roster travels with the study and a removed coder's
sessions end with the row, even while `coder serve` runs. The passwords are hashed with
``hashlib.scrypt`` (a memory-hard standard KDF in the standard library, so nothing extra to
install); sessions are random cookies of which only the SHA-256 is stored. A coder's
decisions never depend on this table: removing a user keeps everything they decided.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from coder.errors import CoderError, SignInRefused, UnknownReference
from coder.store.db import Database, now

ROLES = ("coder", "lead")
SESSION_HOURS = 12          # a sign-in lasts one working day, then the page asks again
MIN_PASSWORD = 10           # characters of a password a coder chooses
OTHERS_KEY = "team.others_visible"   # study_info: coders may see each other's decisions
# scrypt cost: 16 MiB and ~50 ms per hash on one core; stored with each hash, so it can rise
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                         p=SCRYPT_P, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time comparison of the derived key; a malformed stored hash never matches."""
    try:
        kind, n, r, p, salt, key = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(key)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(want), maxmem=2 ** 26)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@functools.cache
def _dummy() -> str:
    """A hash to check against when the name is unknown, so a wrong name costs what a wrong
    password costs and timing does not tell which names exist."""
    return hash_password(secrets.token_urlsafe(16))


def new_password() -> str:
    """A one-time password to print: 16 characters a person can type (no 0/O, 1/l/I)."""
    alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class User:
    name: str
    role: str
    one_time: bool           # still on the printed password
    created_at: str
    last_signin_at: str | None
    sessions: int            # sessions open now


@dataclass
class Signed:
    """A request's signed-in coder, from its session cookie."""

    session_id: int
    name: str
    role: str
    one_time: bool
    expires_at: str

    @property
    def lead(self) -> bool:
        return self.role == "lead"


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise CoderError(f"unknown role '{role}'", hint="use " + " or ".join(ROLES))
    return role


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise SignInRefused(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def any_users(db: Database) -> bool:
    """Whether the study has coders who sign in: then a served page asks every visitor to."""
    return db.one("SELECT EXISTS (SELECT 1 FROM users)")[0] == 1


def _user_row(db: Database, name: str):
    return db.one("SELECT u.*, c.name FROM users u JOIN coders c ON c.id = u.coder_id "
                  "WHERE c.name = ?", (name,))


def _known(store, name: str):
    """The user ``name`` means (spelling resolved as everywhere), or UnknownReference."""
    ref = store.resolve_coder(name)
    row = _user_row(store.db, ref.name) if ref.id is not None else None
    if row is None:
        listed = ", ".join(u.name for u in list_users(store)) or "none yet"
        raise UnknownReference(f"'{ref.name}' cannot sign in to this study",
                               hint=f"add them with `coder users add STUDY {ref.name}`; "
                                    f"users: {listed}")
    return row


def add_user(store, name: str, *, role: str = "coder", password: str | None = None
             ) -> tuple[User, str]:
    """Let ``name`` sign in; returns the user and the password to hand them. Without
    ``password`` a one-time one is made, which the page makes them replace at first sign-in.
    The coder may already have decisions (from the CLI): they stay theirs."""
    _check_role(role)
    if password is not None:
        check_password(password)
    ref = store.resolve_coder(name)
    if ref.id is not None and _user_row(store.db, ref.name) is not None:
        raise CoderError(f"'{ref.name}' can already sign in",
                         hint=f"`coder users reset STUDY {ref.name}` prints a new password")
    if ref.id is not None and store.db.one("SELECT kind FROM coders WHERE id=?",
                                           (ref.id,))["kind"] != "human":
        raise CoderError(f"'{ref.name}' is a consensus coder, not a person",
                         hint="sign-ins are for people; a lead reconciles as the consensus")
    given = password or new_password()
    stamp = now()
    with store.db.transaction() as conn:
        coder_id = store.coder_id(ref.name)
        conn.execute("INSERT INTO users (coder_id, role, password_hash, one_time, created_at, "
                     "password_set_at) VALUES (?,?,?,?,?,?)",
                     (coder_id, role, hash_password(given), 0 if password else 1, stamp, stamp))
    return get_user(store, ref.name), given


def get_user(store, name: str) -> User:
    row = _known(store, name)
    return _user(store.db, row)


def _user(db: Database, row) -> User:
    open_ = db.one("SELECT COUNT(*) FROM sessions WHERE coder_id=? AND ended_at IS NULL AND "
                   "expires_at > ?", (row["coder_id"], now()))[0]
    return User(name=row["name"], role=row["role"], one_time=bool(row["one_time"]),
                created_at=row["created_at"], last_signin_at=row["last_signin_at"],
                sessions=open_)


def list_users(store) -> list[User]:
    rows = store.db.query("SELECT u.*, c.name FROM users u JOIN coders c ON c.id=u.coder_id "
                          "ORDER BY c.id")
    return [_user(store.db, r) for r in rows]


def remove_user(store, name: str) -> User:
    """Stop ``name`` signing in (their sessions end now); their decisions stay in the study."""
    row = _known(store, name)
    user = _user(store.db, row)
    with store.db.transaction() as conn:
        conn.execute("DELETE FROM sessions WHERE coder_id=?", (row["coder_id"],))
        conn.execute("DELETE FROM users WHERE coder_id=?", (row["coder_id"],))
    return user


def set_role(store, name: str, role: str) -> User:
    row = _known(store, name)
    with store.db.transaction() as conn:
        conn.execute("UPDATE users SET role=? WHERE coder_id=?", (_check_role(role),
                                                                  row["coder_id"]))
    return get_user(store, row["name"])


def reset_password(store, name: str) -> str:
    """A new one-time password for ``name``; every session of theirs ends."""
    row = _known(store, name)
    given = new_password()
    with store.db.transaction() as conn:
        conn.execute("UPDATE users SET password_hash=?, one_time=1, password_set_at=? "
                     "WHERE coder_id=?", (hash_password(given), now(), row["coder_id"]))
        conn.execute("UPDATE sessions SET ended_at=? WHERE coder_id=? AND ended_at IS NULL",
                     (now(), row["coder_id"]))
    return given


def change_password(store, signed: Signed, current: str, new: str) -> None:
    """The signed-in coder replaces their password (the one-time one, or their own); their
    other sessions end, this one stays."""
    row = _known(store, signed.name)
    if not verify_password(current, row["password_hash"]):
        raise SignInRefused("the current password is wrong")
    check_password(new)
    if new == current:
        raise SignInRefused("choose a password different from the current one")
    with store.db.transaction() as conn:
        conn.execute("UPDATE users SET password_hash=?, one_time=0, password_set_at=? "
                     "WHERE coder_id=?", (hash_password(new), now(), row["coder_id"]))
        conn.execute("UPDATE sessions SET ended_at=? WHERE coder_id=? AND id != ? AND "
                     "ended_at IS NULL", (now(), row["coder_id"], signed.session_id))


def sign_in(store, name: str, password: str, *, client: str | None = None,
            hours: float = SESSION_HOURS) -> str:
    """A new session for ``name`` if the password is theirs; returns the cookie value.
    Unknown names and wrong passwords get the same message and take the same time."""
    try:
        ref = store.resolve_coder(name)
    except CoderError:
        ref = None
    row = _user_row(store.db, ref.name) if ref is not None and ref.id is not None else None
    ok = verify_password(password, row["password_hash"] if row else _dummy())
    if row is None or not ok:
        raise SignInRefused("wrong name or password",
                            hint="the lead can print a new one: coder users reset STUDY NAME")
    token = secrets.token_urlsafe(32)
    stamp = datetime.now(timezone.utc).replace(microsecond=0)
    expires = (stamp + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")
    with store.db.transaction() as conn:
        conn.execute("INSERT INTO sessions (token_hash, coder_id, created_at, expires_at, "
                     "client) VALUES (?,?,?,?,?)",
                     (_token_hash(token), row["coder_id"], now(), expires, client))
        conn.execute("UPDATE users SET last_signin_at=? WHERE coder_id=?",
                     (now(), row["coder_id"]))
    return token


def session(db: Database, token: str | None) -> Signed | None:
    """The signed-in coder of a session cookie, or None (unknown, ended, expired, removed)."""
    if not token:
        return None
    row = db.one("SELECT s.id, s.expires_at, c.name, u.role, u.one_time FROM sessions s "
                 "JOIN users u ON u.coder_id = s.coder_id JOIN coders c ON c.id = s.coder_id "
                 "WHERE s.token_hash = ? AND s.ended_at IS NULL AND s.expires_at > ?",
                 (_token_hash(token), now()))
    if row is None:
        return None
    return Signed(session_id=row["id"], name=row["name"], role=row["role"],
                  one_time=bool(row["one_time"]), expires_at=row["expires_at"])


def sign_out(store, token: str | None) -> None:
    if not token:
        return
    with store.db.transaction() as conn:
        conn.execute("UPDATE sessions SET ended_at=? WHERE token_hash=? AND ended_at IS NULL",
                     (now(), _token_hash(token)))


def others_visible(db: Database) -> bool:
    """Whether the lead lets coders see each other's decisions (off: coding stays independent)."""
    row = db.one("SELECT value FROM study_info WHERE key=?", (OTHERS_KEY,))
    return row is not None and row["value"] == "1"


def set_others_visible(store, visible: bool) -> None:
    with store.db.transaction() as conn:
        conn.execute("INSERT OR REPLACE INTO study_info (key, value) VALUES (?, ?)",
                     (OTHERS_KEY, "1" if visible else "0"))
