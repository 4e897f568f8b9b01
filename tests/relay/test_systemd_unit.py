"""contrib/parley-relay.service (no systemd here): its ExecStart is a command line the relay
accepts, and the paths it gives the relay are the unit's own directories and the clients'
default socket."""

from __future__ import annotations

import configparser
import shlex
import stat
from pathlib import Path

from relay.cli import _overrides, build_parser
from relay.config import SOCKET_FILE_NAME, SYSTEM_SOCKET_DIR, RelayConfig, load_config
from tui.client.local_socket import SYSTEM_SOCKET

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "parley-relay.service"
EXAMPLE_CONFIG = ROOT / "contrib" / "relay.toml"
INSTALLED_CONFIG = "/etc/parley/relay.toml"  # where the unit's comment installs relay.toml


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    assert parser.sections() == ["Unit", "Service", "Install"]
    return parser["Service"]


def exec_start_config() -> RelayConfig:
    argv = shlex.split(service()["ExecStart"])
    assert Path(argv[0]).name == "parley-relay"
    args = build_parser().parse_args(argv[1:])  # exits (SystemExit) on an unknown option
    assert args.command is None  # it runs the relay
    assert args.config == Path(INSTALLED_CONFIG)
    args.config = EXAMPLE_CONFIG
    return load_config(args.config, _overrides(args))


def test_exec_start_is_accepted_and_its_paths_are_the_units_directories() -> None:
    unit = service()
    config = exec_start_config()
    assert config.data_dir == Path("/var/lib") / unit["StateDirectory"]
    socket_path = Path(config.unix_socket)
    assert socket_path.parent == Path("/run") / unit["RuntimeDirectory"]
    # The path the clients try first, and the relay's own default when it owns /run/parley:
    # local users type nothing.
    assert socket_path == SYSTEM_SOCKET == SYSTEM_SOCKET_DIR / SOCKET_FILE_NAME
    assert config.host == "127.0.0.1"  # exposure to the network is the admin's choice


def test_the_unit_runs_as_a_dedicated_user_with_private_state_and_hardening() -> None:
    unit = service()
    assert unit["User"] == unit["Group"] == "parley"
    # The relay refuses a data dir other users can enter: systemd's default 0755 would not do.
    assert int(unit["StateDirectoryMode"], 8) == 0o700
    # The socket's directory: nobody but the relay's user may write it, everyone may enter.
    runtime_mode = int(unit["RuntimeDirectoryMode"], 8)
    assert runtime_mode & 0o022 == 0 and runtime_mode & stat.S_IXOTH
    for option, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("UMask", "0077"),
    ):
        assert unit[option] == value, option
    assert set(unit["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}


def test_the_example_config_closes_nothing_by_surprise() -> None:
    config = exec_start_config()
    assert config.registration_open is True
    assert config.local_accounts is True
