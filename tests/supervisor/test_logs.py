import io
import json
import logging

from supervisor.logs import configure_logging, redact

KEY = "sk_live_" + "ab12" * 12


def test_keys_and_bearer_tokens_are_masked():
    assert KEY not in redact(f"calling with {KEY}")
    assert redact("Authorization: Bearer pk_live_0123456789abcdef") == "Authorization: Bearer …(hidden)"
    assert redact("sk_trade_" + "f" * 48).startswith("sk_trade_…(hidden)")
    assert redact("an ordinary line about sk_ things") == "an ordinary line about sk_ things"


def test_json_lines_never_carry_a_key_even_in_a_traceback():
    out = io.StringIO()
    handler = configure_logging("casino", level="INFO", fmt="json", stream=out)
    log = logging.getLogger("treasury.test")
    log.info("registered with key %s", KEY)
    try:
        raise RuntimeError(f"venue said no to {KEY}")
    except RuntimeError:
        log.exception("bet failed")
    logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [entry["msg"] for entry in lines] == ["registered with key sk_live_…(hidden)", "bet failed"]
    assert lines[0]["role"] == "casino" and lines[0]["level"] == "INFO"
    assert "RuntimeError" in lines[1]["exc"] and KEY not in out.getvalue()
