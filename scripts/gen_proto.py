"""Regenerate protocol/chat_pb2.py and protocol/chat_pb2.pyi from protocol/chat.proto.

This is the only way the generated files are produced (README: "Regenerating the protocol
code"). ``--check`` regenerates into a temporary directory and exits 1 if the committed files
differ, so CI catches hand edits and a stale .proto. Needs the ``test`` extra (grpcio-tools,
mypy-protobuf, pinned so the output is reproducible).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = Path("protocol") / "chat.proto"
OUTPUTS = ("chat_pb2.py", "chat_pb2.pyi")


def generate(out_dir: Path) -> None:
    """Run protoc (from grpcio-tools) with the mypy-protobuf plugin into ``out_dir``."""
    plugin = shutil.which("protoc-gen-mypy")
    if plugin is None:
        candidate = Path(sys.executable).parent / "protoc-gen-mypy"
        if not candidate.exists():
            sys.exit("protoc-gen-mypy not found: pip install -e '.[test]' first")
        plugin = str(candidate)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={ROOT}",
        f"--plugin=protoc-gen-mypy={plugin}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        str(PROTO),
    ]
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if the committed generated files are out of date"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = []
        for name in OUTPUTS:
            fresh = (Path(tmp) / "protocol" / name).read_bytes()
            target = ROOT / "protocol" / name
            if args.check:
                if not target.exists() or target.read_bytes() != fresh:
                    stale.append(str(target.relative_to(ROOT)))
            else:
                target.write_bytes(fresh)
        if stale:
            print("out of date (run: python scripts/gen_proto.py): " + ", ".join(stale))
            return 1
    print("protocol/chat_pb2.py and .pyi are " + ("up to date" if args.check else "regenerated"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
