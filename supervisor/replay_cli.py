"""`treasury replay FILE [--verify] [--json]`: play a recorded run back through the real actors."""

from __future__ import annotations

import argparse
import json
import sys

from messages.codec import decode
from messages.errors import ConfigError
from supervisor import replay, replay_format


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a record written by `treasury demo --scenario NAME --record FILE` "
                                "(.jsonl or .jsonl.gz)")
    p.add_argument("--verify", action="store_true",
                   help="compare the replayed journal with the recorded one byte for byte; exit 1 on a difference")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (events, counts, verdict) instead of lines")


def replay_main(args: argparse.Namespace) -> int:
    """Exit 0 when replayed (and, with --verify, identical); 1 when --verify finds a difference;
    2 for a record that cannot be read."""
    try:
        recording = replay_format.read(args.file)
    except replay_format.ReplayFormatError as exc:
        raise ConfigError(str(exc)) from None
    result = _replay_with_progress(recording, show=not args.json and sys.stderr.isatty())
    verdict = replay.verify(recording, result) if args.verify else None
    rate = len(result.events) / result.seconds if result.seconds else 0.0
    if args.json:
        out = {
            "scenario": recording.header.scenario, "format_version_read": recording.header.version,
            "inputs": result.inputs, "events": [json.loads(_event_json(raw)) for _, raw in result.events],
            "venue_answers_served": result.venue_served, "venue_answers_unused": result.venue_unused,
            "divergences": result.divergences, "wall_seconds": round(result.seconds, 3),
            "events_per_second": round(rate, 1),
        }
        if verdict is not None:
            out["verify"] = {"same": verdict.same, "recorded_events": verdict.recorded,
                             "replayed_events": verdict.replayed, "first_difference": verdict.first_difference}
        print(json.dumps(out, sort_keys=True))
    else:
        for env in result.decoded():
            print(replay.summarise_event(env))
        print(f"replayed {result.inputs} inputs → {len(result.events)} events in {result.seconds:.2f} s "
              f"({rate:,.0f} events/s); venue answers served {result.venue_served}, unused {result.venue_unused}")
        for d in result.divergences[:5]:
            print(f"diverged: {d}")
        if verdict is not None:
            print("verify: identical" if verdict.same else f"verify: DIFFERENT — {verdict.first_difference}")
    return 0 if verdict is None or verdict.same else 1


def _replay_with_progress(recording: replay_format.Recording, *, show: bool) -> replay.ReplayResult:
    """A progress bar on a terminal (stderr), nothing otherwise."""
    if not show:
        return replay.replay(recording)
    from rich.progress import Progress

    with Progress(transient=True, console=None) as bar:
        task = bar.add_task("replaying inputs", total=len(recording.inputs))
        return replay.replay(recording, progress=lambda done, total: bar.update(task, completed=done))


def _event_json(raw: bytes) -> bytes:
    import msgspec

    return msgspec.json.encode(decode(raw))
