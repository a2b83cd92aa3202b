"""Console users: who signs in to the console, with which role, and how a password is checked.

A user has an e-mail (stored lower-cased: one person, one row), an argon2id hash of a password
and a role, ranked as API keys' are (viewer < marketer < admin; :mod:`domain.keys`). A password
is never stored or logged; :func:`create_user` without one generates it and returns it once.
:func:`authenticate` takes as long for an unknown e-mail as for a wrong password, so sign-in
answers do not tell which e-mails exist.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import BadRequest, Conflict, NotFound
from domain.keys import ROLES
from store.models import ConsoleUser
from store.types import utcnow

PASSWORD_MIN = 10
PASSWORD_MAX = 256  # argon2 hashes any length; a bound keeps one request's hashing cheap
EMAIL_MAX = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
#: Verified against for unknown e-mails, so that they cost what a wrong password costs.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def normalise_email(email: str) -> str:
    """The stored form of an e-mail: trimmed, lower-cased; a BadRequest when it is not one."""
    value = email.strip().lower()
    if len(value) > EMAIL_MAX or not _EMAIL.match(value):
        raise BadRequest("not an e-mail address (expected name@domain.tld)", code="invalid_email")
    return value


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise BadRequest(f"a password needs at least {PASSWORD_MIN} characters", code="weak_password")
    if len(password) > PASSWORD_MAX:
        raise BadRequest(f"a password has at most {PASSWORD_MAX} characters", code="invalid_password")
    if not password.isprintable():
        raise BadRequest("a password is printable characters only", code="invalid_password")
    return password


def generate_password() -> str:
    """A random password of 20 URL-safe characters (120 bits)."""
    return secrets.token_urlsafe(15)


def create_user(session: Session, *, email: str, role: str, password: str | None = None) -> tuple[ConsoleUser, str]:
    """Store a new user and return it with its password (the one given, or a generated one)."""
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    email = normalise_email(email)
    password = check_password(password) if password is not None else generate_password()
    if find(session, email) is not None:
        raise Conflict(f"a user with e-mail {email} exists already", code="user_exists")
    user = ConsoleUser(email=email, role=role, password_hash=_HASHER.hash(password))
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # created by a concurrent request since the look-up
        session.rollback()
        raise Conflict(f"a user with e-mail {email} exists already", code="user_exists") from None
    return user, password


def find(session: Session, email: str) -> ConsoleUser | None:
    return session.scalar(select(ConsoleUser).where(ConsoleUser.email == email.strip().lower()))


def get_user(session: Session, user_id: int) -> ConsoleUser:
    user = session.get(ConsoleUser, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def list_query() -> Select[ConsoleUser]:
    return select(ConsoleUser).order_by(ConsoleUser.email)


def authenticate(session: Session, email: str, password: str) -> ConsoleUser | None:
    """The user whose e-mail and password these are, else None (as slow either way)."""
    user = find(session, email) if len(email) <= EMAIL_MAX else None
    hashed = user.password_hash if user is not None else _DUMMY_HASH
    try:
        _HASHER.verify(hashed, password[: PASSWORD_MAX + 1])
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _HASHER.check_needs_rehash(user.password_hash):  # the library's parameters moved on
        user.password_hash = _HASHER.hash(password)
    user.last_sign_in_at = utcnow()
    return user


def verify(user: ConsoleUser, password: str) -> bool:
    """Whether ``password`` is the user's (no side effect)."""
    try:
        return bool(_HASHER.verify(user.password_hash, password[: PASSWORD_MAX + 1]))
    except (VerificationError, InvalidHashError):
        return False


def change_password(session: Session, user: ConsoleUser, current: str, new: str) -> None:
    """Replace the password after checking the current one (a BadRequest when it is wrong)."""
    if not verify(user, current):
        raise BadRequest("the current password is not right", code="wrong_password")
    user.password_hash = _HASHER.hash(check_password(new))
    session.flush()


def set_password(session: Session, user: ConsoleUser, password: str | None = None) -> str:
    """Replace the password without knowing the old one (an operator's reset); returns the new
    password, generated when none is given. Every session of the user ends."""
    chosen = check_password(password) if password is not None else generate_password()
    user.password_hash = _HASHER.hash(chosen)
    session.flush()
    return chosen


def password_version(user: ConsoleUser) -> str:
    """A short fingerprint of the user's hash: a session remembers it, so changing the password
    signs out every other session of that user."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]
