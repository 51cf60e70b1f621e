"""Generates the mailpool.v1 stubs at build time (protoc + grpc_python_plugin) next to the
sources (git-ignored), then builds with the metadata from pyproject.toml."""
import os
import sys

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import generate_stubs  # noqa: E402

# Every build (wheel, editable, sdist) regenerates from proto/; an unpacked sdist that has
# no proto/ keeps the stubs it ships.
try:
    generate_stubs.proto_dir()
    have_protos = True
except SystemExit:
    have_protos = False
if have_protos or not os.path.isdir(os.path.join(HERE, "mailpool", "v1")):
    generate_stubs.generate(HERE)

setup()
