import pytest

from messages.errors import TreasuryError
from supervisor.agents_cli import read_agents_file


def test_json_and_toml_agents_files(tmp_path):
    j = tmp_path / "agents.json"
    j.write_text('{"agents": [{"name": "alice", "capital": "1000"}, {"name": "bob", "capital": 250.5}]}')
    t = tmp_path / "agents.toml"
    t.write_text('[[agents]]\nname = "carol"\ncapital = "12.34"\n')
    assert read_agents_file(j) == [("alice", 1_000_000_000), ("bob", 250_500_000)]
    assert read_agents_file(t) == [("carol", 12_340_000)]


@pytest.mark.parametrize("text, words", [
    ('{"agents": [{"name": "x", "capital": "-5"}]}', "entry 1: capital: -5 is negative"),
    ('{"agents": [{"name": "x"}]}', "entry 1 needs a name and a capital"),
    ('{"agents": [{"name": "x", "capital": "10"}, {"name": "y", "capital": 0}]}', "entry 2: capital: 0 must be"),
    ('{"agent": []}', "expected a list under 'agents'"),
    ("not json", "agents file"),
])
def test_bad_agents_files_are_refused_with_the_reason(tmp_path, text, words):
    f = tmp_path / "agents.json"
    f.write_text(text)
    with pytest.raises(TreasuryError, match=words):
        read_agents_file(f)
