"""Who may read the store over the network, and a record of every read (查询留痕).

Users (kept in the store) have a salted scrypt password hash, never the password. Every page and API read
is appended to `accesslog` — who, when, which path and which household — and, like every audit table, the
database refuses to change or delete it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import queue
import secrets
import threading
from concurrent.futures import Future

from sqlalchemy import Engine, insert, select
from sqlmodel import Field, Session, SQLModel

from povertyrules.errors import PovertyRulesError
from povertyrules.store.database import retrying, stored_form

_N, _R, _P = 2**14, 8, 1


class WebUser(SQLModel, table=True):
    """A person allowed to read the inspector pages when they are served beyond loopback."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    password_hash: str  # scrypt$N$r$p$salt$hash (hex)
    created_at: dt.datetime


class AccessLog(SQLModel, table=True):
    """One read of a page or API answer: who, when, what, which household (append-only)."""

    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(index=True)
    user: str
    client: str | None = None
    method: str
    path: str
    household_id: str | None = Field(default=None, index=True)
    status: int


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def add_user(engine: Engine, name: str, password: str) -> None:
    if not name.strip() or len(password) < 8:
        raise PovertyRulesError("a user needs a name and a password of at least 8 characters / 用户名或密码无效")
    with Session(engine) as session:
        if session.execute(select(WebUser).where(WebUser.name == name)).first():
            raise PovertyRulesError(f"user {name} exists already / 用户已存在")
        session.add(WebUser(name=name, password_hash=hash_password(password), created_at=dt.datetime.now(dt.UTC)))
        session.commit()


def has_users(engine: Engine) -> bool:
    with Session(engine) as session:
        return session.execute(select(WebUser.id).limit(1)).first() is not None


def authenticate(engine: Engine, name: str, password: str) -> bool:
    with Session(engine) as session:
        user = session.execute(select(WebUser).where(WebUser.name == name)).scalars().first()
    if user is None:
        check_password(password, hash_password("x" * 8))  # the same time whether or not the user exists
        return False
    return check_password(password, user.password_hash)


def log_read(engine: Engine, user: str, client: str | None, method: str, path: str, household_id: str | None,
             status: int) -> None:
    _write(engine, [_entry(user, client, method, path, household_id, status)])


def _entry(user: str, client: str | None, method: str, path: str, household_id: str | None,
           status: int) -> dict:
    return dict(at=dt.datetime.now(dt.UTC), user=user, client=client, method=method, path=path[:500],
                household_id=household_id, status=status)


def _write(engine: Engine, entries: list[dict]) -> None:
    """Append `entries` in one transaction (one statement for all of them: no ORM object per read); an identity
    or phone number in a path or household id is kept as the store keeps every other one (masked form and keyed
    hash, `stored_form`): a log of who searched for which ID number must not itself hold the number."""
    from urllib.parse import unquote

    table = AccessLog.__table__
    entries = [{**e, "path": stored_form(engine, unquote(e["path"]))[:500],
                "household_id": stored_form(engine, e["household_id"])} for e in entries]

    def write() -> None:
        with engine.begin() as connection:
            connection.execute(insert(table), entries)

    retrying(write)


class ReadLog:
    """`log_read` for a server: the reads that arrive while one commit is under way are written together in
    the next (group commit), so concurrent readers share commits instead of queueing for the database's write
    lock one by one. Each read's future is done only once its entry is committed; a server answers a page
    after that, so no read goes unlogged."""

    MAX_BATCH = 500

    def __init__(self, engine: Engine):
        self.engine = engine
        self.queue: queue.SimpleQueue[tuple[dict, Future]] = queue.SimpleQueue()
        threading.Thread(target=self._work, name="povertyrules-read-log", daemon=True).start()

    def log(self, user: str, client: str | None, method: str, path: str, household_id: str | None,
            status: int) -> Future:
        done: Future = Future()
        self.queue.put((_entry(user, client, method, path, household_id, status), done))
        return done

    def _work(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < self.MAX_BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                _write(self.engine, [entry for entry, _ in batch])
            except Exception as exc:  # every waiting request gets the error (the server answers 500)
                for _, done in batch:
                    done.set_exception(exc)
            else:
                for _, done in batch:
                    done.set_result(None)


def access_log(engine: Engine, household_id: str | None = None, limit: int = 1000) -> list[AccessLog]:
    with Session(engine) as session:
        query = select(AccessLog).order_by(AccessLog.id.desc()).limit(limit)
        if household_id:
            query = query.where(AccessLog.household_id == stored_form(engine, household_id))
        return list(session.execute(query).scalars())
