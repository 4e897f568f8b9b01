"""What keeps a running client small (issue 15 item 7, bench/bench_tui_memory.py) keeps its
behaviour: protobuf's pure-Python layer stays unrun until touched (tui/lean_imports.py),
Textual's key names are answered without Unicode name searches (tui/key_names.py), the
SQLite caches and freed heap are given back after a chat opens (tui/memory.py), and the TLS
context of a pinned relay carries no CA store."""

from __future__ import annotations

import sqlite3
import ssl
import string
import threading
from pathlib import Path

import pytest
from textual import app as textual_app
from textual import keys as textual_keys
from textual import screen as textual_screen

from tests.harness import RelayProcess
from tests.probe import run_probe
from tests.tui.conftest import app_config, log_in, start_peer, wait_until
from tui import memory
from tui.app import ParleyApp
from tui.client import sqlite_files
from tui.client.trust import TrustPolicy, TrustStore
from tui.key_names import CHARACTER_KEYS, format_key, key_to_character

PROTOBUF_PROBE = """
import json, sys
import tui  # what every client process imports first
from protocol import chat_pb2

NAME = "google.protobuf.internal.python_message"
request = chat_pb2.LoginRequest(username="alice", protocol_version=2, device="tui@box")
decoded = chat_pb2.LoginRequest.FromString(request.SerializeToString())
before = {m: m in sys.modules for m in ("google.protobuf.text_format", "calendar")}
unrun = type(sys.modules[NAME]).__name__
helper = sys.modules[NAME]._AttachFieldHelpers  # the first touch runs the module
print(json.dumps({"decoded": [decoded.username, decoded.protocol_version, decoded.device],
                  "before": before, "unrun_type": unrun,
                  "after_type": type(sys.modules[NAME]).__name__, "helper": callable(helper),
                  "text_format": "google.protobuf.text_format" in sys.modules}))
"""


def test_protobuf_python_layer_is_loaded_only_when_touched() -> None:
    result = run_probe(PROTOBUF_PROBE)
    assert result["decoded"] == ["alice", 2, "tui@box"]  # messages work without it
    assert result["before"]["google.protobuf.text_format"] is False
    assert result["unrun_type"] == "_LazyModule"
    assert result["after_type"] == "module" and result["helper"]  # the real module on use
    assert result["text_format"]


# --- key names ---------------------------------------------------------------------------

KEYS = sorted(
    {key.value for key in textual_keys.Keys}
    | set(string.ascii_letters + string.digits)
    | {"question_mark", "exclamation_mark", "full_stop", "plus", "minus", "ctrl+l", "f24"}
)


def test_key_names_answer_as_textual_does() -> None:
    assert {key: key_to_character(key) for key in KEYS} == {
        key: textual_keys.key_to_character(key) for key in KEYS
    }
    assert {key: format_key(key) for key in KEYS} == {
        key: textual_keys.format_key(key) for key in KEYS
    }


class _NoLookups:
    """Stands in for ``unicodedata`` in ``textual.keys``: any name search fails the test."""

    def lookup(self, name: str) -> str:
        raise AssertionError(f"unicodedata.lookup({name!r})")

    def name(self, character: str) -> str:
        raise AssertionError(f"unicodedata.name({character!r})")


def test_named_keys_letters_and_digits_need_no_unicode_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(textual_keys, "unicodedata", _NoLookups())
    plain = [key for key in KEYS if key in {k.value for k in textual_keys.Keys} or len(key) == 1]
    for key in plain:
        key_to_character(key)
        format_key(key)
    assert key_to_character("up") is None and format_key("up") == "↑"
    assert {key: key_to_character(key) for key in CHARACTER_KEYS} == CHARACTER_KEYS


def test_the_app_installs_the_key_names(tmp_path: Path) -> None:
    ParleyApp()  # its driver lookup installs them, like the key parser
    assert textual_screen.key_to_character is key_to_character
    assert textual_app.format_key is format_key  # type: ignore[attr-defined]


# --- SQLite caches and the heap -------------------------------------------------------------


def test_shrinking_skips_closed_and_foreign_thread_databases(tmp_path: Path) -> None:
    kept = sqlite_files.open_private_database(tmp_path / "kept.db", 1)
    kept.execute("CREATE TABLE t (x TEXT)")
    kept.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(2000)])
    kept.commit()
    closed = sqlite_files.open_private_database(tmp_path / "closed.db", 1)
    closed.close()
    opened: list[sqlite3.Connection] = []
    thread = threading.Thread(
        target=lambda: opened.append(sqlite_files.open_private_database(tmp_path / "other.db", 1))
    )
    thread.start()
    thread.join()
    memory.release_free_memory()  # neither the closed nor the other thread's one raises
    assert closed not in sqlite_files._OPEN and opened[0] not in sqlite_files._OPEN
    assert kept in sqlite_files._OPEN
    assert kept.execute("SELECT count(*), max(length(x)) FROM t").fetchone() == (2000, 500)
    kept.close()


async def test_opening_a_chat_gives_memory_back_once_it_is_drawn(
    relay: RelayProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    release = memory.release_free_memory

    def recorded() -> None:
        calls.append("released")
        release()

    monkeypatch.setattr("tui.screens.main.release_free_memory", recorded)
    bob = await start_peer(relay, tmp_path, "bob")
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await log_in(pilot, app, "alice")
            calls.clear()
            screen.open_conversation(bob.uid or 0)
            assert calls == []  # not in the middle of opening it: once it is drawn
            await wait_until(pilot, lambda: calls == ["released"], "the release after drawing")
            assert str(screen.view.border_title).startswith("Chat with")
            assert screen.composer.has_focus
            await app.action_quit()
    finally:
        await bob.close()


# --- TLS context --------------------------------------------------------------------------


def test_pinned_and_known_relay_contexts_load_no_ca_certificates(tmp_path: Path) -> None:
    policies = [
        TrustPolicy.pinned("SHA256:" + "A" * 43),
        TrustPolicy.known_relays(TrustStore(tmp_path / "known_relays")),
    ]
    for policy in policies:
        ctx = policy.ssl_context()
        assert ctx is not None
        assert ctx.cert_store_stats() == {"crl": 0, "x509_ca": 0, "x509": 0}
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
        assert ctx.verify_mode is ssl.CERT_NONE  # the pin is checked after the handshake


TLS_PROBE = """
import asyncio, json, sys
import tui  # what every client process imports first
from tui.client.connection import Endpoint, open_connection
from tui.client.trust import TrustPolicy, TrustStore

async def main(port: int, fingerprint: str) -> None:
    conn = await open_connection(Endpoint("127.0.0.1", port), TrustPolicy.pinned(fingerprint))
    assert conn.fingerprint == fingerprint
    await conn.close()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
print(json.dumps({"idna": "encodings.idna" in sys.modules}))
"""


def test_a_pinned_relay_on_an_ip_address_needs_no_idna_codec(relay: RelayProcess) -> None:
    """No SNI for an IP literal (RFC 6066), so Python's IDNA codec (stringprep) stays
    unloaded; the pin is still checked (tests/tui/client/test_trust.py refuses a wrong one)."""
    assert relay.fingerprint is not None
    assert run_probe(TLS_PROBE, str(relay.port), relay.fingerprint) == {"idna": False}


def test_the_server_name_is_kept_where_it_matters(tmp_path: Path) -> None:
    from tui.client.connection import _server_name

    pinned = TrustPolicy.pinned("SHA256:" + "A" * 43).ssl_context()
    ca = ssl.create_default_context()
    assert _server_name("127.0.0.1", pinned) == "" and _server_name("::1", pinned) == ""
    assert _server_name("chat.example.org", pinned) == "chat.example.org"  # SNI kept
    assert _server_name("127.0.0.1", ca) == "127.0.0.1"  # CA mode checks the address
    assert _server_name("127.0.0.1", None) is None  # plaintext
