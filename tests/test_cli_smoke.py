"""The product picture from the README, run as a user would."""

from __future__ import annotations

import json

import pytest

from tests.clitools import read_line


@pytest.mark.timeout(30)
def test_serve_listen_send_list(cli) -> None:
    cli.serve("wallpaper_change")
    listener = cli.listen("wallpaper_change", "--count", "1")
    sent = cli.run("send", "wallpaper_change", input='{"progress": 40}\n')
    assert sent.returncode == 0, sent.stderr
    record = json.loads(read_line(listener))
    assert record["data"] == {"progress": 40} and record["message_type"] == "data"
    assert listener.wait(10) == 0
    listed = cli.run("list", "--json")
    assert [h["event_name"] for h in json.loads(listed.stdout)] == ["wallpaper_change"]
