"""Replay: recorded scenario runs play back through the real actors identically; differences,
divergences, old format versions and bad records are each reported as such."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from supervisor import replay, replay_format
from supervisor.scenarios import SCENARIOS, run_scenario

RECORDS = Path(__file__).parent / "replay_records"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_recorded_scenario_replays_identically(name):
    recording = replay_format.read(RECORDS / f"{name}.jsonl.gz")
    result = replay.replay(recording)
    verdict = replay.verify(recording, result)
    assert verdict.same, verdict.first_difference
    assert result.divergences == []
    assert result.venue_unused == 0
    assert verdict.recorded == len(recording.outputs) > 0


def test_a_fresh_recording_replays_identically(tmp_path):
    path = tmp_path / "bet-cap.jsonl"
    summary = run_scenario("bet-cap", seed=11, record=path)
    recording = replay_format.read(path)
    assert recording.header.scenario == "bet-cap" and recording.header.seed == 11
    assert summary["journal_events"] == len(recording.outputs)
    verdict = replay.verify(recording, replay.replay(recording))
    assert verdict.same, verdict.first_difference


def _tamper_first_output(recording: replay_format.Recording) -> tuple[replay_format.Recording, str]:
    from messages.codec import decode, encode

    records = list(recording.records)
    n = next(i for i, r in enumerate(records) if isinstance(r, replay_format.Output))
    env = decode(records[n].event)
    changed = msgspec.structs.replace(env, created_ms=env.created_ms + 1)
    records[n] = replay_format.Output(replay_format.b64(encode(changed)), records[n].agent)
    return replay_format.Recording(recording.header, records), env.type


def test_verify_names_the_first_difference():
    recording = replay_format.read(RECORDS / "bet-cap.jsonl.gz")
    tampered, kind = _tamper_first_output(recording)
    verdict = replay.verify(tampered, replay.replay(tampered))
    assert not verdict.same
    assert verdict.first_difference.startswith(f"event 0 ({kind}): created_ms recorded ")


def test_a_missing_venue_answer_is_a_divergence_not_a_silent_pass():
    recording = replay_format.read(RECORDS / "bet-cap.jsonl.gz")
    records = list(recording.records)
    last_venue = max(i for i, r in enumerate(records) if isinstance(r, replay_format.VenueExchange))
    dropped = records.pop(last_venue)
    result = replay.replay(replay_format.Recording(recording.header, records))
    assert any(dropped.url in d and "not in the record" in d for d in result.divergences)
    assert not replay.verify(recording, result).same


def test_a_version_1_record_still_replays(tmp_path):
    recording = replay_format.read(RECORDS / "escrow-overcommit.jsonl.gz")
    old = tmp_path / "old.jsonl"
    old.write_bytes(b"\n".join(replay_format.downgrade_to_v1(recording)) + b"\n")
    assert json.loads(old.read_text().splitlines()[0])["version"] == 1
    upgraded = replay_format.read(old)
    assert upgraded.exchanges == recording.exchanges
    verdict = replay.verify(upgraded, replay.replay(upgraded))
    assert verdict.same, verdict.first_difference


@pytest.mark.parametrize("content, message", [
    (b"", "empty record"),
    (b'{"kind": "clock", "ms": 1}\n', "the first line must be the header"),
    (b"not json\n", ":1: "),
    (b"[" * 5000 + b"\n", ":1: "),
])
def test_unreadable_records_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(replay_format.ReplayFormatError, match=message):
        replay_format.read(path)


def test_a_newer_version_is_refused(tmp_path):
    recording = replay_format.read(RECORDS / "bet-cap.jsonl.gz")
    path = tmp_path / "future.jsonl.gz"
    replay_format.write(path, replay_format.Recording(msgspec.structs.replace(recording.header, version=99),
                                                      recording.records))
    with pytest.raises(replay_format.ReplayFormatError, match="version 99 is not supported"):
        replay_format.read(path)


def test_bodies_that_are_not_text_round_trip(tmp_path):
    header = replay_format.read(RECORDS / "bet-cap.jsonl.gz").header
    garbled = bytes(range(256))
    ex = replay_format.VenueExchange("GET", "http://x/y", "", 200, base64.b64encode(garbled).decode())
    path = tmp_path / "r.jsonl.gz"
    replay_format.write(path, replay_format.Recording(header, [ex]))
    with gzip.open(path) as f:
        assert len(f.read().splitlines()) == 2
    assert replay_format.read(path).exchanges[0].body == garbled


def _treasury(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_replay_verify_exit_codes(tmp_path):
    ok = _treasury("replay", str(RECORDS / "reserve-floor.jsonl.gz"), "--verify", "--json")
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["verify"]["same"] is True and out["verify"]["first_difference"] is None
    assert len(out["events"]) == out["verify"]["recorded_events"] > 0

    tampered, _ = _tamper_first_output(replay_format.read(RECORDS / "reserve-floor.jsonl.gz"))
    path = tmp_path / "tampered.jsonl"
    replay_format.write(path, tampered)
    bad = _treasury("replay", str(path), "--verify")
    assert bad.returncode == 1
    assert "verify: DIFFERENT — event 0" in bad.stdout

    missing = _treasury("replay", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such file" in missing.stderr
