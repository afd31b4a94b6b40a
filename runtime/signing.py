"""Signing and verifying commands published to Redis from outside the treasury.

Anyone who can write to Redis can publish a command, so a command from outside carries proof
that a holder of a trusted key sent it, recently, once:

    signature = "v1.<key_id>.<expires_ms>.<nonce>.<hmac>"
    hmac      = HMAC-SHA256(secret, signed_bytes) as 64 lowercase hex digits
    signed_bytes = b"agent-treasury/command/v1\\n" + key_id + b"\\n" + str(expires_ms) + b"\\n"
                   + nonce + b"\\n" + canonical envelope

The canonical envelope is the envelope with `signature=None`, encoded as msgpack the way
messages.codec encodes it (struct fields in declaration order), with map keys sorted so the
bytes do not depend on how a dict happened to be built. The key id, expiry and nonce are signed
too, so none of them can be swapped without breaking the HMAC; the version prefix keeps these
bytes from ever meaning anything else. Every field of the envelope is covered: id, agent,
created time, body, causation and correlation.

`verify` checks in a fixed order, cheapest and least informative first, and claims the nonce
last: a command that fails any other check never records its nonce, so a forged or out-of-scope
command cannot burn the nonce of a legitimate one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from messages.base import Message
from messages.catalogue import required_scope
from messages.envelope import Envelope
from messages.errors import ConfigError, TreasuryError
from runtime.keyring import KEY_ID_RE, SCOPES, Keyring, Scope, SigningKey, scope_covers, scope_rank
from runtime.nonces import NonceStore

VERSION = "v1"
DOMAIN = b"agent-treasury/command/v1\n"

DEFAULT_TTL_MS = 60_000
"""How long a new signature stays valid: long enough for a queue, short enough to limit replay."""

MAX_TTL_MS = 300_000
"""The longest lifetime a verifier accepts; it also bounds how long nonces are kept."""

MAX_SIGNATURE_LEN = 256

NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""At least 16 characters so a random nonce has at least 64 bits; no dots (the separator)."""

_SIGNATURE_RE = re.compile(
    r"(?P<version>v1)\."
    r"(?P<key_id>[A-Za-z0-9_-]{1,64})\."
    r"(?P<expires_ms>[1-9][0-9]{0,15})\."
    r"(?P<nonce>[A-Za-z0-9_-]{16,64})\."
    r"(?P<mac>[0-9a-f]{64})"
)
"""One spelling per signature: lowercase hex, no leading zeros, so no two strings carry the same MAC."""

# Failure codes, one per way a command can be refused (CommandAuthError.code).
UNSIGNED = "unsigned"
MALFORMED_SIGNATURE = "malformed_signature"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
EXPIRED = "expired"
EXPIRY_TOO_FAR = "expiry_too_far"
INSUFFICIENT_SCOPE = "insufficient_scope"
REPLAYED = "replayed"

CODES: tuple[str, ...] = (
    UNSIGNED,
    MALFORMED_SIGNATURE,
    UNKNOWN_KEY,
    BAD_SIGNATURE,
    EXPIRED,
    EXPIRY_TOO_FAR,
    INSUFFICIENT_SCOPE,
    REPLAYED,
)
"""Every failure code, in the order `verify` checks for them."""


class CommandAuthError(TreasuryError):
    """A command from outside that is refused: not signed, not by a trusted key, stale, or replayed.

    `code` is one of `CODES`, for machines; the text is for the dead stream and the journal and
    never contains a secret or an expected MAC.
    """

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"command refused ({code}): {detail}")
        self.code = code
        self.detail = detail


class SignatureParts(NamedTuple):
    version: str
    key_id: str
    expires_ms: int
    nonce: str
    mac: str


@dataclass(frozen=True)
class VerifiedCommand:
    """A command whose signature checked out, and who signed it: for the journal and the actors."""

    envelope: Envelope
    key_id: str
    scope: Scope
    expires_ms: int
    nonce: str


_canonical_encoder = msgspec.msgpack.Encoder(order="deterministic")


def canonical_envelope(envelope: Envelope) -> bytes:
    """The envelope's bytes as signed: `signature=None`, msgpack, map keys sorted."""
    return _canonical_encoder.encode(msgspec.structs.replace(envelope, signature=None))


def signed_bytes(envelope: Envelope, key_id: str, expires_ms: int, nonce: str) -> bytes:
    """Exactly the bytes the HMAC covers."""
    header = f"{key_id}\n{expires_ms}\n{nonce}\n".encode("ascii")
    return DOMAIN + header + canonical_envelope(envelope)


def _mac(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    """128 random bits as 32 hex digits."""
    return secrets.token_hex(16)


def format_signature(key_id: str, expires_ms: int, nonce: str, mac: str) -> str:
    return f"{VERSION}.{key_id}.{expires_ms}.{nonce}.{mac}"


def parse_signature(signature: object) -> SignatureParts:
    """Split a signature string, or raise `CommandAuthError(malformed_signature)`."""
    if not isinstance(signature, str):
        raise CommandAuthError(MALFORMED_SIGNATURE, f"signature must be a string, got {type(signature).__name__}")
    if len(signature) > MAX_SIGNATURE_LEN:
        raise CommandAuthError(
            MALFORMED_SIGNATURE, f"signature is {len(signature)} characters (at most {MAX_SIGNATURE_LEN})"
        )
    match = _SIGNATURE_RE.fullmatch(signature)
    if match is None:
        version = signature.split(".", 1)[0]
        if version != VERSION and re.fullmatch(r"v[0-9]{1,3}", version):
            detail = f"unsupported signature version {version!r} (expected {VERSION})"
        else:
            detail = f"expected {VERSION}.<key_id>.<expires_ms>.<nonce>.<64 hex digits>"
        raise CommandAuthError(MALFORMED_SIGNATURE, detail)
    return SignatureParts(
        version=match["version"],
        key_id=match["key_id"],
        expires_ms=int(match["expires_ms"]),
        nonce=match["nonce"],
        mac=match["mac"],
    )


def sign(
    envelope: Envelope,
    key: SigningKey,
    *,
    now_ms: int,
    ttl_ms: int = DEFAULT_TTL_MS,
    nonce: str | None = None,
) -> Envelope:
    """A copy of the envelope carrying a signature by `key`, valid for `ttl_ms`.

    Any signature the envelope already had is replaced. The key's scope is not checked here: a
    command signed with too weak a key is refused by `verify` (see `required_scope_for`).
    """
    if ttl_ms <= 0:
        raise ConfigError(f"ttl_ms must be positive, got {ttl_ms}")
    expires_ms = now_ms + ttl_ms
    if expires_ms <= 0:
        raise ConfigError("the signature's expiry must be a positive time in milliseconds")
    if nonce is None:
        nonce = new_nonce()
    elif not NONCE_RE.fullmatch(nonce):
        raise ConfigError("nonce must be 16-64 characters of A-Z a-z 0-9 _ -")
    if not KEY_ID_RE.fullmatch(key.key_id):
        raise ConfigError("key id must be 1-64 characters of A-Z a-z 0-9 _ -")
    mac = _mac(key.secret, signed_bytes(envelope, key.key_id, expires_ms, nonce))
    return msgspec.structs.replace(envelope, signature=format_signature(key.key_id, expires_ms, nonce, mac))


def required_scope_for(body: Message) -> Scope:
    """The weakest key scope that may sign a command with this body (`messages.catalogue`).

    An internal poke (which may travel unsigned) needs an agent key when it is signed; a type the
    catalogue does not list as a command (an event, a broadcast) needs an operator key, so that
    an agent key cannot inject messages only the treasury's own actors should write. A `SetRisk`
    to ACTIVE is a resume and always needs an operator: the verifier cannot know the state the
    command will meet. A `Rebalance` whose trigger stands for an operator needs an operator key.
    """
    scope = required_scope(body)
    return "agent" if scope == "internal" else scope


def verify(
    envelope: Envelope,
    keyring: Keyring,
    *,
    now_ms: int,
    nonces: NonceStore,
    required_scope: str = "agent",
    max_ttl_ms: int = MAX_TTL_MS,
    holder: str | None = None,
) -> VerifiedCommand:
    """Check a command's signature and claim its nonce, or raise `CommandAuthError`.

    The scope needed is the stronger of `required_scope` and `required_scope_for(body)`: a
    caller can raise the bar, never lower it below what the body needs.

    Order: unsigned, malformed_signature, unknown_key, bad_signature, expired, expiry_too_far,
    insufficient_scope, replayed. Before the MAC is checked nothing is said about time or scope,
    and the nonce is claimed only once everything else has passed.
    """
    verified = check_signature(envelope, keyring, now_ms=now_ms, required_scope=required_scope,
                               max_ttl_ms=max_ttl_ms)
    if not nonces.claim(verified.key_id, verified.nonce, verified.expires_ms, now_ms, agent=envelope.agent,
                        holder=holder):
        raise replayed(verified)
    return verified


def replayed(verified: VerifiedCommand) -> CommandAuthError:
    """The refusal of a command whose nonce was claimed before (by another delivery)."""
    return CommandAuthError(REPLAYED, f"nonce {verified.nonce} of key {verified.key_id!r} was already used")


def check_signature(
    envelope: Envelope,
    keyring: Keyring,
    *,
    now_ms: int,
    required_scope: str = "agent",
    max_ttl_ms: int = MAX_TTL_MS,
) -> VerifiedCommand:
    """Every check of `verify` but the last (the nonce claim), in the same order: the caller
    must claim `nonce` (until `expires_ms`) before applying the command — `verify` does, and
    `runtime.command_gate.CommandGate.check_many` claims a whole batch's nonces in one round trip."""
    scope_rank(required_scope)
    if max_ttl_ms <= 0:
        raise ConfigError(f"max_ttl_ms must be positive, got {max_ttl_ms}")

    if envelope.signature is None:
        raise CommandAuthError(UNSIGNED, f"{envelope.type} {envelope.id} carries no signature")
    parts = parse_signature(envelope.signature)

    key = keyring.get(parts.key_id)
    if key is None:
        raise CommandAuthError(UNKNOWN_KEY, f"no trusted key has id {parts.key_id!r}")

    expected = _mac(key.secret, signed_bytes(envelope, parts.key_id, parts.expires_ms, parts.nonce))
    if not hmac.compare_digest(expected, parts.mac):
        raise CommandAuthError(BAD_SIGNATURE, f"signature by key {parts.key_id!r} does not match the command")

    if parts.expires_ms <= now_ms:
        raise CommandAuthError(EXPIRED, f"signature expired {now_ms - parts.expires_ms} ms ago")
    if parts.expires_ms - now_ms > max_ttl_ms:
        raise CommandAuthError(
            EXPIRY_TOO_FAR,
            f"signature expires in {parts.expires_ms - now_ms} ms, more than the {max_ttl_ms} ms allowed",
        )

    needed = max(required_scope, required_scope_for(envelope.body), key=SCOPES.index)
    if not scope_covers(key.scope, needed):
        raise CommandAuthError(
            INSUFFICIENT_SCOPE,
            f"{envelope.type} needs an {needed} key; key {parts.key_id!r} is an {key.scope} key",
        )

    return VerifiedCommand(
        envelope=envelope,
        key_id=parts.key_id,
        scope=key.scope,
        expires_ms=parts.expires_ms,
        nonce=parts.nonce,
    )
