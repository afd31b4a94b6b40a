"""The real services' recorded answers (tests/venue/contract/recorded/*.json), as `Exchange`s.

Each file holds the exchanges of one recording run against the real services built from their
public source (see recorded/README.md). `service_of` names the service an exchange went to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORDED = Path(__file__).parent / "recorded"
FILES = ("casino", "escrow", "faucet", "trading", "wallet", "bad-input")


@dataclass(frozen=True)
class Exchange:
    file: str
    index: int
    call: str
    method: str
    path: str
    request: Any
    status: int
    body: Any

    @property
    def service(self) -> str:
        if self.file in ("trading", "wallet"):
            return self.file
        if self.path.startswith("/escrow"):
            return "escrow"
        if self.path.startswith("/faucet"):
            return "faucet"
        return "casino"

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None

    @property
    def id(self) -> str:
        return f"{self.file}[{self.index}] {self.call}"


def load(file: str) -> list[Exchange]:
    data = json.loads((RECORDED / f"{file}.json").read_text())
    return [Exchange(file, i, e["call"], e["method"], e["path"], e.get("request"), e["status"], e["body"])
            for i, e in enumerate(data["exchanges"])]


def every() -> list[Exchange]:
    return [x for f in FILES for x in load(f)]
