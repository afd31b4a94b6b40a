"""The journal is archived only by the explicit step, to day files, and read back whole."""

from __future__ import annotations

import pytest

from messages.codec import FIELD, encode
from messages.envelope import seeded_ids, wrap
from messages.errors import ConfigError, MessageDecodeError
from messages.schema import BalancesChanged
from runtime.archive import archive_journal, archive_key
from runtime.journal import read_journal, replay_journal

pytestmark = pytest.mark.redis

AGENT = "arch:agent.1"  # a name quoted to make a portable directory name
DAY = 24 * 3600 * 1000
T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


def write(client, keys, n, start_ms, step_ms, seed):
    ids = seeded_ids(seed)
    out = []
    for i in range(n):
        ms = start_ms + i * step_ms
        env = wrap(BalancesChanged(cause=f"e{seed}-{i}"), agent=AGENT, now_ms=ms, new_id=ids)
        client.xadd(keys.events(AGENT), {FIELD: encode(env)}, id=f"{ms}-0")
        out.append(env)
    return out


def test_archived_entries_leave_redis_and_the_journal_reads_the_same(rclient, keys, tmp_path):
    written = write(rclient, keys, 30, T0, 6 * 3600 * 1000, seed=1)  # 30 entries over 7.5 days
    result = archive_journal(rclient, keys, AGENT, tmp_path, before_ms=T0 + 5 * DAY, page=7)
    assert result.archived == 20  # entries at 0, 6, 12 ... 114 h: before day 5
    assert len(result.files) == 6 and all("arch%3Aagent.1" in f for f in result.files)
    assert rclient.xlen(keys.events(AGENT)) == 10
    assert read_journal(rclient, keys, AGENT) == written
    # run again later: the rest goes too, nothing is repeated
    more = write(rclient, keys, 3, T0 + 10 * DAY, 1000, seed=2)
    archive_journal(rclient, keys, AGENT, tmp_path, before_ms=T0 + 9 * DAY)
    assert rclient.xlen(keys.events(AGENT)) == 3
    assert read_journal(rclient, keys, AGENT) == written + more
    assert list(replay_journal(rclient, keys, AGENT, page=2)) == written + more


def test_a_crash_before_the_position_is_recorded_repeats_nothing_for_readers(rclient, keys, tmp_path):
    written = write(rclient, keys, 10, T0, 1000, seed=3)
    archive_journal(rclient, keys, AGENT, tmp_path, before_ms=T0 + 5000)
    # as if the next run wrote its files and died before recording: records appended twice
    rclient.hset(archive_key(keys, AGENT), "last_id", "0-0")
    archive_journal(rclient, keys, AGENT, tmp_path, before_ms=T0 + 8000)
    assert read_journal(rclient, keys, AGENT) == written


def test_nothing_older_than_the_cutoff_means_nothing_moves(rclient, keys, tmp_path):
    written = write(rclient, keys, 5, T0, 1000, seed=4)
    result = archive_journal(rclient, keys, AGENT, tmp_path, before_ms=T0)
    assert result.archived == 0 and not list(tmp_path.iterdir())
    assert not rclient.exists(archive_key(keys, AGENT))
    assert read_journal(rclient, keys, AGENT) == written


def test_a_missing_archive_directory_is_an_error_not_a_shorter_journal(rclient, keys, tmp_path):
    write(rclient, keys, 5, T0, 1000, seed=5)
    archive_journal(rclient, keys, AGENT, tmp_path / "a", before_ms=T0 + 3000)
    (tmp_path / "a").rename(tmp_path / "moved")
    with pytest.raises(ConfigError, match="which is missing"):
        read_journal(rclient, keys, AGENT)
    with pytest.raises(ConfigError, match="archived in"):
        archive_journal(rclient, keys, AGENT, tmp_path / "b", before_ms=T0 + 4000)


def test_the_cli_archives_every_agent_and_refuses_a_negative_age(rclient, keys, tmp_path, redis_url, capsys):
    import json

    from supervisor.cli import main
    from supervisor.deployment import deployment_key

    rclient.hset(deployment_key(keys.prefix), mapping={"shard_count": keys.shards, "venues": json.dumps({})})
    rclient.sadd(keys.agents(), AGENT)
    written = write(rclient, keys, 4, T0, 1000, seed=6)
    args = ["journal", "archive", "--dir", str(tmp_path), "--redis-url", redis_url, "--prefix", keys.prefix]
    assert main(args + ["--older-than-days", "-1"]) == 2
    assert "must not be negative" in capsys.readouterr().err
    assert main(args) == 0
    assert "4 entries archived" in capsys.readouterr().out
    assert rclient.xlen(keys.events(AGENT)) == 0
    assert read_journal(rclient, keys, AGENT) == written


def test_replay_events_folds_only_the_asked_types_from_files_and_stream(rclient, keys, tmp_path):
    from messages.codec import FIELD, encode
    from messages.schema import BetSettled
    from runtime.journal import replay_events

    written = write(rclient, keys, 12, T0, 1000, seed=6)
    archive_journal(rclient, keys, AGENT, tmp_path, before_ms=T0 + 7000)
    assert rclient.xlen(keys.events(AGENT)) == 5
    got = list(replay_events(rclient, keys, AGENT, (BalancesChanged,), page=2))
    assert [(g.id, g.created_ms, g.correlation, g.body) for g in got] == [
        (e.id, e.created_ms, e.correlation, e.body) for e in written]
    assert list(replay_events(rclient, keys, AGENT, (BetSettled,))) == []
    # an event naming another agent in this agent's journal is an error, not folded
    stray = wrap(BalancesChanged(cause="x"), agent="someone-else", now_ms=T0 + 20_000, new_id=seeded_ids(9))
    rclient.xadd(keys.events(AGENT), {FIELD: encode(stray)})
    with pytest.raises(MessageDecodeError, match="names agent"):
        list(replay_events(rclient, keys, AGENT, (BalancesChanged,)))


def test_stopping_a_replay_early_leaves_the_client_usable(rclient, keys):
    written = write(rclient, keys, 7, T0, 1000, seed=7)
    it = replay_journal(rclient, keys, AGENT, page=2)
    assert next(it) == written[0]
    it.close()  # the next page was asked for and not read
    assert rclient.ping() and read_journal(rclient, keys, AGENT) == written
