"""Build the independent C load client ``bench/loadgen/loadgen.c`` (one command).

Usage: python -m bench.build_loadgen [--force]

The binary goes to ``bench/loadgen/build/loadgen`` (ignored by git). :func:`build` rebuilds
only when the binary is missing or older than the source, so the benches and the test call
it every time. Nothing is installed here: when the compiler or the OpenSSL headers are
missing, :class:`BuildError` says exactly what to install.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LOADGEN_DIR = Path(__file__).resolve().parent / "loadgen"
SOURCE = LOADGEN_DIR / "loadgen.c"
BINARY = LOADGEN_DIR / "build" / "loadgen"
INSTALL_HINT = "apt-get install -y gcc libssl-dev"
CFLAGS = ("-O2", "-Wall", "-Wextra")
LIBS = ("-lssl", "-lcrypto")


class BuildError(RuntimeError):
    """The load client cannot be built here; the message says what to install."""


def compiler() -> str | None:
    """The C compiler to use: $CC, else cc or gcc on PATH; None if there is none."""
    wanted = os.environ.get("CC")
    if wanted:
        return shutil.which(wanted)
    return shutil.which("cc") or shutil.which("gcc")


def missing_prerequisites() -> list[str]:
    """What is missing to build the load client (empty when it can be built).

    The OpenSSL headers are checked by preprocessing ``#include <openssl/ssl.h>``, so a
    header installed anywhere the compiler looks counts.
    """
    cc = compiler()
    if cc is None:
        return [f"no C compiler (cc/gcc) on PATH: run `{INSTALL_HINT}`"]
    with tempfile.TemporaryDirectory(prefix="parley-loadgen-") as tmp:
        probe = Path(tmp) / "probe.c"
        probe.write_text("#include <openssl/ssl.h>\nint main(void) { return 0; }\n")
        result = subprocess.run(
            [cc, "-o", str(Path(tmp) / "probe"), str(probe), *LIBS],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        return [f"OpenSSL headers or libraries missing (libssl-dev): run `{INSTALL_HINT}`"]
    return []


def is_current() -> bool:
    """True when the binary exists and is not older than the source."""
    return BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime


def build(force: bool = False) -> Path:
    """Compile the load client if it is missing or outdated; return the binary's path."""
    if not force and is_current():
        return BINARY
    missing = missing_prerequisites()
    if missing:
        raise BuildError("cannot build the load client: " + "; ".join(missing))
    cc = compiler()
    assert cc is not None
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    partial = BINARY.with_name(f"loadgen.{os.getpid()}.tmp")
    result = subprocess.run(
        [cc, *CFLAGS, "-o", str(partial), str(SOURCE), *LIBS],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"compiling {SOURCE} failed:\n{result.stderr}")
    partial.replace(BINARY)  # atomic: a concurrent build never sees half a binary
    return BINARY


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    try:
        path = build(force=args.force)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
