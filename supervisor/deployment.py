"""Where a deployment keeps what every command needs to find it: data dir, Redis URL, keys, venues.

`treasury up` writes `<data-dir>/redis.url` while it runs and records the venues and the shard
count in Redis (`<prefix>:deployment`), so `treasury cmd`, `status` and `agent add` started later
find the same deployment without flags. The shard count is fixed when a deployment is created.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import redis

from messages.errors import ConfigError
from runtime.keyring import Keyring, add_key_to_file, generate_key
from runtime.keys import Keys

DEFAULT_DATA_DIR = ".treasury"
DATA_DIR_ENV = "TREASURY_DATA_DIR"
REAL_VENUES = {
    "casino": "https://casino.purpleflea.com",
    "escrow": "https://escrow.purpleflea.com",
    "faucet": "https://faucet.purpleflea.com",
    "trading": "https://trading.purpleflea.com",
    "wallet": "https://wallet.purpleflea.com",
}


def live_venues() -> dict[str, str]:
    """The real services, each overridable with TREASURY_<SERVICE>_URL (a proxy, a staging host)."""
    return {name: os.environ.get(f"TREASURY_{name.upper()}_URL", url) for name, url in REAL_VENUES.items()}


def data_dir(path: str | None = None) -> Path:
    d = Path(path or os.environ.get("TREASURY_DATA_DIR", DEFAULT_DATA_DIR))
    d.mkdir(parents=True, exist_ok=True)
    return d


def redis_url_file(d: Path) -> Path:
    return d / "redis.url"


def ensure_keys(d: Path) -> Path:
    """The deployment's command keys: TREASURY_KEYS_FILE, else `<data-dir>/keys.json`, created
    on first use with one agent key and one operator key (mode 0600)."""
    path = Path(os.environ.get("TREASURY_KEYS_FILE") or d / "keys.json")
    if not path.exists():
        add_key_to_file(path, generate_key("local-agent", "agent"))
        add_key_to_file(path, generate_key("local-operator", "operator"))
    return path


def load_keyring(d: Path | None = None) -> Keyring:
    if os.environ.get("TREASURY_KEYS") or os.environ.get("TREASURY_KEYS_FILE"):
        return Keyring.from_env()
    path = (d or Path(os.environ.get("TREASURY_DATA_DIR", DEFAULT_DATA_DIR))) / "keys.json"
    if not path.exists():
        raise ConfigError(f"no command keys: set TREASURY_KEYS or TREASURY_KEYS_FILE, or run `treasury up` "
                          f"once to create {path}")
    return Keyring.from_file(path)


def deployment_key(prefix: str) -> str:
    return Keys(prefix).deployment()


def record_deployment(client: redis.Redis, keys: Keys, venues: dict[str, str], mode: str) -> None:
    existing = client.hget(deployment_key(keys.prefix), "shard_count")
    if existing is not None and int(existing) != keys.shards:
        raise ConfigError(f"this deployment was created with {int(existing)} shards, not {keys.shards}; "
                          f"the shard count cannot change")
    client.hset(deployment_key(keys.prefix), mapping={"shard_count": keys.shards, "venues": json.dumps(venues),
                                                      "mode": mode})


def load_deployment(client: redis.Redis, prefix: str) -> tuple[Keys, dict[str, str], str]:
    raw = client.hgetall(deployment_key(prefix))
    if not raw:
        raise ConfigError(f"no deployment with prefix {prefix!r} in this Redis: start one with `treasury up`")
    return (Keys(prefix, int(raw[b"shard_count"])), json.loads(raw[b"venues"]), raw.get(b"mode", b"paper").decode())
