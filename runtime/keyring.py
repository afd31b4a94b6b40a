"""The keys that may sign commands, and where they come from.

A deployment trusts a small set of HMAC keys, each with an id (written into every signature, so
keys can be rotated: add the new key, move the signers, drop the old one) and a scope. An
`agent` key lets a program or an agent publish ordinary commands; an `operator` key is held by
people and is needed for the commands that undo a safety measure or change the rules (resume
from HALTED, policy changes). An operator key may also sign anything an agent key may.

Keys come from the environment (`TREASURY_KEYS`, for containers and tests) and/or a key file
(`TREASURY_KEYS_FILE`, JSON or TOML, for hosts). The format is in docs/commands-auth.md.

Secrets never appear in a repr, a str or an error message: a key shows its id and scope only,
and a parse error names the entry by position, not by content. The one way to read a secret
back is the explicit `SigningKey.reveal_hex()`, for `treasury keys new` to show it once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Literal, Mapping

from messages.errors import ConfigError

Scope = Literal["agent", "operator"]
SCOPES: tuple[str, ...] = ("agent", "operator")
"""Scopes from weakest to strongest; a key covers its own scope and every weaker one."""

KEYS_ENV = "TREASURY_KEYS"
"""Environment variable holding keys inline: `id:scope:hexsecret`, separated by commas or spaces."""

KEYS_FILE_ENV = "TREASURY_KEYS_FILE"
"""Environment variable naming a key file (JSON, or TOML when the name ends in `.toml`)."""

KEY_FILE_VERSION = 1

MIN_SECRET_BYTES = 32
"""256 bits: the HMAC-SHA256 block of entropy. Shorter secrets are refused, not padded."""

MAX_SECRET_BYTES = 64
"""SHA-256's block size; a longer HMAC key is hashed first, so it would add nothing."""

KEY_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Key ids go inside the dot-separated signature string, so they carry no dots."""


def scope_rank(scope: str) -> int:
    """Position of a scope in `SCOPES`, or `ConfigError` for an unknown one."""
    try:
        return SCOPES.index(scope)
    except ValueError:
        raise ConfigError(f"unknown key scope {scope!r} (expected one of {', '.join(SCOPES)})") from None


def scope_covers(have: str, need: str) -> bool:
    """Whether a key of scope `have` may sign a command that needs scope `need`."""
    return scope_rank(have) >= scope_rank(need)


@dataclass(frozen=True, repr=False)
class SigningKey:
    """One HMAC key. Its repr shows the id and scope, never the secret."""

    key_id: str
    secret: bytes = field(hash=False)
    scope: Scope = "agent"

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not KEY_ID_RE.fullmatch(self.key_id):
            raise ConfigError("key id must be 1-64 characters of A-Z a-z 0-9 _ -")
        if not isinstance(self.secret, (bytes, bytearray)):
            raise ConfigError(f"key {self.key_id}: secret must be bytes")
        if not MIN_SECRET_BYTES <= len(self.secret) <= MAX_SECRET_BYTES:
            raise ConfigError(
                f"key {self.key_id}: secret must be {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes, got {len(self.secret)}"
            )
        scope_rank(self.scope)
        object.__setattr__(self, "secret", bytes(self.secret))

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r}, scope={self.scope!r}, secret=<hidden>)"

    __str__ = __repr__

    def reveal_hex(self) -> str:
        """The secret as hex. Only for handing a new key to its holder once; never log it."""
        return self.secret.hex()

    def env_entry(self) -> str:
        """This key as one `TREASURY_KEYS` entry (`id:scope:hex`). Contains the secret."""
        return f"{self.key_id}:{self.scope}:{self.secret.hex()}"

    def file_entry(self) -> dict[str, str]:
        """This key as one entry of a key file's `keys` list. Contains the secret."""
        return {"id": self.key_id, "scope": self.scope, "secret": self.secret.hex()}


def generate_key(key_id: str, scope: Scope = "agent") -> SigningKey:
    """A fresh key with a 256-bit secret from the OS (`treasury keys new`)."""
    return SigningKey(key_id=key_id, secret=secrets.token_bytes(MIN_SECRET_BYTES), scope=scope)


def _secret_from_hex(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise ConfigError(f"{where}: secret must be a hex string")
    try:
        return bytes.fromhex(text.strip())
    except ValueError:
        # The message names the entry, never the text: the text is (nearly) a secret.
        raise ConfigError(f"{where}: secret is not valid hex") from None


def _key_from_entry(entry: object, where: str) -> SigningKey:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: expected a table with id, scope and secret")
    unknown = sorted(set(entry) - {"id", "scope", "secret"})
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}")
    key_id = entry.get("id")
    if not isinstance(key_id, str):
        raise ConfigError(f"{where}: missing key id")
    scope = entry.get("scope", "agent")
    if not isinstance(scope, str):
        raise ConfigError(f"{where} ({key_id}): scope must be a string")
    if "secret" not in entry:
        raise ConfigError(f"{where} ({key_id}): missing secret")
    try:
        return SigningKey(key_id=key_id, secret=_secret_from_hex(entry["secret"], f"{where} ({key_id})"), scope=scope)  # type: ignore[arg-type]
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from None


class Keyring:
    """The keys a verifier trusts, by id. Read-only once built."""

    def __init__(self, keys: Iterable[SigningKey] = ()) -> None:
        by_id: dict[str, SigningKey] = {}
        for key in keys:
            if not isinstance(key, SigningKey):
                raise ConfigError(f"keyring entries must be SigningKey, got {type(key).__name__}")
            if key.key_id in by_id:
                raise ConfigError(f"duplicate key id {key.key_id!r}")
            by_id[key.key_id] = key
        self._keys = by_id

    def get(self, key_id: str) -> SigningKey | None:
        return self._keys.get(key_id)

    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[SigningKey]:
        return iter(self._keys.values())

    def __repr__(self) -> str:
        listed = ", ".join(f"{k.key_id}:{k.scope}" for k in self._keys.values())
        return f"Keyring([{listed}])"

    __str__ = __repr__

    def merged(self, other: Keyring) -> Keyring:
        """Both keyrings' keys; the same id in both is a configuration error, not an override."""
        return Keyring([*self, *other])

    @classmethod
    def parse_env(cls, value: str, *, source: str = KEYS_ENV) -> Keyring:
        """Keys written inline: `id:scope:hexsecret` entries separated by commas or whitespace."""
        keys = []
        for n, entry in enumerate(filter(None, re.split(r"[\s,]+", value.strip())), start=1):
            parts = entry.split(":")
            where = f"{source} entry {n}"
            if len(parts) != 3:
                raise ConfigError(f"{where}: expected id:scope:hexsecret")
            key_id, scope, secret_hex = parts
            keys.append(_key_from_entry({"id": key_id, "scope": scope, "secret": secret_hex}, where))
        return cls(keys)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        """Keys from a JSON file, or a TOML one when the name ends in `.toml` (same structure)."""
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read key file {path}: {exc.strerror or exc}") from None
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(raw.decode("utf-8"))
            else:
                data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            # JSON and TOML errors quote a line and column, not the content, but be safe anyway.
            kind = "TOML" if path.suffix == ".toml" else "JSON"
            raise ConfigError(f"key file {path} is not valid {kind} (at {_position(exc)})") from None
        if not isinstance(data, Mapping) or not isinstance(data.get("keys", []), list):
            raise ConfigError(f"key file {path}: expected a top-level 'keys' list")
        version = data.get("version", KEY_FILE_VERSION)
        if version != KEY_FILE_VERSION:
            raise ConfigError(f"key file {path}: unsupported version {version!r} (expected {KEY_FILE_VERSION})")
        return cls(_key_from_entry(e, f"key file {path} key {n}") for n, e in enumerate(data.get("keys", []), start=1))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring:
        """Keys from `TREASURY_KEYS_FILE` and `TREASURY_KEYS` together; either may be absent."""
        env = os.environ if environ is None else environ
        ring = cls()
        if env.get(KEYS_FILE_ENV):
            ring = ring.merged(cls.from_file(env[KEYS_FILE_ENV]))
        if env.get(KEYS_ENV):
            ring = ring.merged(cls.parse_env(env[KEYS_ENV]))
        return ring


def _position(exc: Exception) -> str:
    line = getattr(exc, "lineno", None)
    col = getattr(exc, "colno", None)
    if line is not None:
        return f"line {line}, column {col}"
    match = re.search(r"line (\d+), column (\d+)", str(exc))
    return f"line {match[1]}, column {match[2]}" if match else "an unknown position"


def write_key_file(path: str | os.PathLike[str], keys: Iterable[SigningKey]) -> None:
    """Write a JSON key file readable by its owner only (0600), replacing any old one atomically."""
    path = Path(path)
    if path.suffix == ".toml":
        raise ConfigError(f"{path}: key files are written as JSON; use a .json name")
    ring = Keyring(keys)
    text = json.dumps({"version": KEY_FILE_VERSION, "keys": [k.file_entry() for k in ring]}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def add_key_to_file(path: str | os.PathLike[str], key: SigningKey) -> None:
    """Append a key to a JSON key file, creating it if needed; an existing id is refused."""
    path = Path(path)
    existing = Keyring.from_file(path) if path.exists() else Keyring()
    write_key_file(path, [*existing, key])


class KeyFileWatch:
    """Notices when `TREASURY_KEYS_FILE` changes and builds the new keyring (env keys kept).

    `poll()` returns the new `Keyring` after the file changed (size, mtime or inode), else None.
    A file that cannot be read or parsed keeps the old keyring: `poll()` returns None and
    `last_error` says why (the caller logs it)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ if environ is None else environ)
        self.path = Path(self.env[KEYS_FILE_ENV]) if self.env.get(KEYS_FILE_ENV) else None
        self.last_error = ""
        self._stamp = self._read_stamp()

    def _read_stamp(self) -> tuple[object, ...] | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return ("missing",)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def poll(self) -> Keyring | None:
        if self.path is None:
            return None
        stamp = self._read_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            ring = Keyring.from_env(self.env)
        except ConfigError as exc:
            self.last_error = str(exc)
            return None
        self.last_error = ""
        return ring
