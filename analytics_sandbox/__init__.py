"""The bundled sandbox of the analytics API: the contract, served from a deterministic world.

One implementation answers both ways a test or benchmark reaches it: a real loopback
server (``serve``, ``serve_subprocess``, ``python -m analytics_sandbox serve``)
and an in-process ``httpx`` transport (``SandboxTransport``) that needs no sockets.
"""

from __future__ import annotations

from .app import FaultRule, Reply, SandboxApp, SandboxSettings, SandboxTransport
from .server import RunningSandbox, serve, serve_subprocess
from .world import DEFAULT_COUNTS, RESOURCES, RawNumber, World, format_timestamp, parse_timestamp

__all__ = [
    "DEFAULT_COUNTS",
    "RESOURCES",
    "FaultRule",
    "RawNumber",
    "Reply",
    "RunningSandbox",
    "SandboxApp",
    "SandboxSettings",
    "SandboxTransport",
    "World",
    "format_timestamp",
    "parse_timestamp",
    "serve",
    "serve_subprocess",
]
