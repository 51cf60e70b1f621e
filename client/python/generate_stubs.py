#!/usr/bin/env python3
"""Generates the mailpool.v1 Python stubs from proto/ with protoc and grpc_python_plugin, or
with grpcio-tools (grpc_tools.protoc, which bundles both) when the plugin is absent.

Usage: generate_stubs.py [OUT_DIR]   (default: the directory of this script)

Writes OUT_DIR/mailpool/v1/{*_pb2.py,*_pb2.pyi,*_pb2_grpc.py,__init__.py}, and the
standard error model (proto/google/rpc: google.rpc.Status, ErrorInfo, RetryInfo, BadRequest)
as OUT_DIR/mailpool/_rpc/*_pb2.py, used when googleapis-common-protos is not installed. The protos are
looked up in $MAILPOOL_PROTO_DIR, else ../../proto relative to this script (the repo).
The plugin is $MAILPOOL_GRPC_PYTHON_PLUGIN, else grpc_python_plugin on PATH (Debian's
protobuf-compiler-grpc); without it, grpcio-tools (a build requirement in pyproject.toml,
so an isolated `pip install`/`pip wheel` has it). An sdist ships the generated stubs, so a
wheel built from it needs neither.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def proto_dir() -> str:
    candidates = [os.environ.get("MAILPOOL_PROTO_DIR", ""),
                  os.path.join(HERE, "proto"),
                  os.path.join(HERE, "..", "..", "proto")]
    for c in candidates:
        if c and os.path.isdir(os.path.join(c, "mailpool", "v1")):
            return os.path.abspath(c)
    raise SystemExit("mailpool: cannot find proto/mailpool/v1 (set MAILPOOL_PROTO_DIR)")


def _compiler():
    """(protoc argv prefix, plugin flags) from Debian's tools, else grpcio-tools, else None."""
    protoc = os.environ.get("PROTOC") or shutil.which("protoc")
    plugin = os.environ.get("MAILPOOL_GRPC_PYTHON_PLUGIN") or shutil.which("grpc_python_plugin")
    if protoc and plugin and os.path.exists(plugin):
        return [protoc], [f"--plugin=protoc-gen-grpc={plugin}"], "grpc"
    try:
        import grpc_tools  # noqa: F401  (grpcio-tools)
    except ImportError:
        return None
    import importlib.resources
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    return [sys.executable, "-m", "grpc_tools.protoc", f"-I{include}"], [], "grpc_python"


def generate(out_dir: str) -> None:
    compiler = _compiler()
    if compiler is None:
        raise SystemExit("mailpool: needs protoc and grpc_python_plugin (Debian: apt-get install "
                         "protobuf-compiler protobuf-compiler-grpc), or grpcio-tools")
    protoc, plugin_flags, grpc_out = compiler
    src = proto_dir()
    protos = sorted(glob.glob(os.path.join(src, "mailpool", "v1", "*.proto")))
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run([*protoc, f"-I{src}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
                    f"--{grpc_out}_out={out_dir}", *plugin_flags, *protos], check=True)
    pkg = os.path.join(out_dir, "mailpool", "v1")
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write('"""Generated mailpool.v1 stubs (protoc); do not edit."""\n')
    # google.rpc: generated under its own name, then moved into mailpool._rpc so that it
    # never shadows an installed google.rpc (googleapis-common-protos), which is preferred.
    rpc_protos = sorted(glob.glob(os.path.join(src, "google", "rpc", "*.proto")))
    rpc_pkg = os.path.join(out_dir, "mailpool", "_rpc")
    os.makedirs(rpc_pkg, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([*protoc, f"-I{src}", f"--python_out={tmp}", f"--pyi_out={tmp}",
                        *rpc_protos], check=True)
        for name in os.listdir(os.path.join(tmp, "google", "rpc")):
            shutil.copy(os.path.join(tmp, "google", "rpc", name), os.path.join(rpc_pkg, name))
    with open(os.path.join(rpc_pkg, "__init__.py"), "w") as f:
        f.write('"""Generated google.rpc error model (protoc); do not edit."""\n')


if __name__ == "__main__":
    generate(os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else HERE)
