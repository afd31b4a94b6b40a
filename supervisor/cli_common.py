"""What every `treasury` subcommand shares: one-line argument errors, finding the deployment,
checked inputs, and text from data made safe for a terminal.

Finding the deployment, in order: `--redis-url`; the `redis.url` of a `treasury up` running in
the directory `--data-dir` names; `$REDIS_URL`; the `redis.url` of a running `treasury up` in
`$TREASURY_DATA_DIR`, else `.treasury`. No deployment found is an error (`NoDeployment`, exit 2),
never a silent read of some default Redis.
"""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import redis

from messages.errors import ConfigError, TreasuryError
from runtime.keys import Keys
from supervisor.deployment import DATA_DIR_ENV, DEFAULT_DATA_DIR

MAX_REASON_BYTES = 1024
"""A reason is a sentence for the journal, not a document: 1 kB of UTF-8 at most."""


class NoDeployment(ConfigError):
    """No running deployment could be found from the flags, the environment and the data dir."""


class OneLineParser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line on stderr (`treasury up: error: ...`), exit 2.

    A missing positional when the line holds a word starting with `-` that is no option (an agent
    named `-dash`) says so and how to give it (`-- -dash`)."""

    argv: list[str] = []
    """The command line being parsed (set by `supervisor.cli.parse_args`), to explain a `-name`."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        if message.startswith("the following arguments are required") and not message.startswith(
                "the following arguments are required: -"):
            dashed = [w for w in OneLineParser.argv if w.startswith("-") and not w.startswith("--") and len(w) > 2
                      and not _is_number(w) and w not in self._option_string_actions]
            if dashed:
                message += (f"; {dashed[0]!r} starts with '-' so it was read as an option: to give a value "
                            f"starting with '-', put it after `--` (e.g. `{self.prog} ... -- {dashed[0]}`)")
        self.exit(2, f"{self.prog}: error: {safe_text(message)} (see `{self.prog} --help`)\n")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- text from data


def safe_text(text: object, limit: int | None = None) -> str:
    """`text` with every control, format or unassigned character shown as an escape (`\\x1b`,
    `\\n`, `\\u202e`), so data read from Redis or typed by someone cannot move a terminal's cursor
    or recolour it. Cut to `limit` characters (with `…`) when given."""
    out = []
    for ch in str(text):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            out.append(ascii(ch)[1:-1])
        else:
            out.append(ch)
    shown = "".join(out)
    if limit is not None and len(shown) > limit:
        shown = shown[: max(0, limit - 1)] + "…"
    return shown


# ---------------------------------------------------------------- checked inputs


def reason_text(text: str, *, flag: str = "--reason") -> str:
    """A reason: some visible text, at most `MAX_REASON_BYTES` of UTF-8, no control characters."""
    if not text or not text.strip():
        raise ConfigError(f"{flag} needs some text saying why")
    size = len(text.encode())
    if size > MAX_REASON_BYTES:
        raise ConfigError(f"{flag} is {size} bytes; keep it under {MAX_REASON_BYTES} bytes (one or two sentences)")
    if safe_text(text) != text:
        raise ConfigError(f"{flag} {ascii(text)[:60]} holds control characters")
    return text


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number above 0")
    return value


# ---------------------------------------------------------------- finding the deployment


def add_deployment_arguments(p: argparse.ArgumentParser, *, prefix: bool = True) -> None:
    """--data-dir, --redis-url and --prefix: where the deployment is."""
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help=f"the deployment's data directory (default ${DATA_DIR_ENV}, else {DEFAULT_DATA_DIR}); "
                        "its redis.url names the Redis of a running `treasury up`")
    p.add_argument("--redis-url", default=None, metavar="URL",
                   help="the deployment's Redis (default: the redis.url of a `treasury up` running in --data-dir, "
                        "else $REDIS_URL, else the redis.url in $TREASURY_DATA_DIR or .treasury)")
    if prefix:
        p.add_argument("--prefix", default="tr", help="key prefix of the deployment (default tr)")


def data_dir_path(path: str | None = None) -> Path:
    """The data directory named by `path`, else $TREASURY_DATA_DIR, else `.treasury` (not created)."""
    return Path(path or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def find_redis_url(args: argparse.Namespace) -> str:
    """The deployment's Redis URL (see the module docstring), or `NoDeployment` saying where it looked."""
    from supervisor.ownership import owner_pid

    if getattr(args, "redis_url", None):
        return args.redis_url
    explicit = getattr(args, "data_dir", None)
    if explicit and owner_pid(Path(explicit)) is not None and (Path(explicit) / "redis.url").exists():
        text = (Path(explicit) / "redis.url").read_text().strip()
        if text:
            return text
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    d = data_dir_path(explicit)
    f = d / "redis.url"
    if f.exists():
        if owner_pid(d) is None:
            raise NoDeployment(f"the deployment in {d} is not running (its redis.url is left from a stopped run); "
                               f"start it with `treasury up --data-dir {d}`")
        text = f.read_text().strip()
        if text:
            return text
    where = f"{d} (from --data-dir)" if getattr(args, "data_dir", None) else (
        f"{d} (from ${DATA_DIR_ENV})" if os.environ.get(DATA_DIR_ENV) else f"{d} (the default)")
    raise NoDeployment(f"no running deployment found in {where}: start one with `treasury up`, or give "
                       f"--data-dir, --redis-url or $REDIS_URL")


@dataclass
class Deployment:
    """A deployment found and reached: its Redis client, keys, venues and mode."""

    url: str
    client: redis.Redis
    keys: Keys
    venues: dict[str, str]
    mode: str


def connect(args: argparse.Namespace, *, need_record: bool = True) -> Deployment:
    """Find the deployment, PING its Redis and read its record (`<prefix>:deployment`).

    Raises `NoDeployment` when nothing is found or the Redis holds no deployment under the prefix,
    `supervisor.status.RedisUnreachable` when Redis does not answer: one line each."""
    from supervisor.deployment import load_deployment
    from supervisor.status import open_client, redact_url

    url = find_redis_url(args)
    client = open_client(url)
    prefix = getattr(args, "prefix", "tr")
    try:
        keys, venues, mode = load_deployment(client, prefix)
    except ConfigError:
        if need_record:
            client.close()
            raise NoDeployment(f"no deployment with prefix {prefix!r} in the Redis at {redact_url(url)}: start one "
                               f"with `treasury up` (or give the right --prefix)") from None
        from runtime.keys import DEFAULT_SHARDS

        keys, venues, mode = Keys(prefix, DEFAULT_SHARDS), {}, "unknown"
    return Deployment(url, client, keys, venues, mode)


class UnknownAgent(ConfigError):
    """An agent name this deployment does not serve (exit 2, one line)."""


def agent_known(client: redis.Redis, keys: Keys, agent: str) -> bool:
    """Whether the deployment serves `agent`: it is in the agent set, or its ledger or risk state exists."""
    return bool(client.sismember(keys.agents(), agent) or client.exists(keys.ledger(agent), keys.risk(agent)))


def require_agent(client: redis.Redis, keys: Keys, agent: str) -> str:
    """`agent` when the deployment serves it (`agent_known`), else `UnknownAgent`:
    "unknown agent 'nosuch': `treasury agent list` shows the agents this treasury serves"."""
    if not agent_known(client, keys, agent):
        raise UnknownAgent(f"unknown agent {safe_text(agent)!r}: `treasury agent list` shows the agents this "
                           f"treasury serves")
    return agent


def os_error_text(exc: OSError) -> str:
    """An OS error for people: `No such file or directory: /nonexistent` (the reason, then the
    path), never Python's `[Errno 2] ...` form."""
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason


def report_error(command: str, exc: BaseException) -> int:
    """One line on stderr for an expected failure; exit code 2."""
    print(f"treasury {command}: error: {safe_text(' '.join(str(exc).split()))}", file=sys.stderr)
    return 2


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (TreasuryError, redis.RedisError, OSError, OverflowError)
"""What the top-level handler turns into one line: our own errors, Redis failures, file errors."""
