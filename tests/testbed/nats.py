"""NATS with JetStream (Debian's nats-server), its store in the work folder."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

from tests.testbed.process import BrokerProcess, find_executable, free_port

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


class NatsServer(BrokerProcess):
    """A private nats-server with JetStream on loopback; the store survives a restart.

    ``domain`` names the server's JetStream domain (its API is then also served on
    ``$JS.<domain>.API``); nats-server 2.9 takes it only from a configuration file.
    """

    name = "nats"
    start_timeout = 30.0

    def __init__(self, workdir: Path, domain: str | None = None) -> None:
        super().__init__(workdir)
        self.domain = domain
        self.config_path = self.workdir / "nats.conf"
        self.executable = find_executable("nats-server", "/usr/sbin/nats-server")
        self.port = free_port()
        self.monitor_port = free_port()
        self.store_dir = self.workdir / "jetstream"

    def prepare(self) -> None:
        if self.domain is not None:
            self.config_path.write_text(f"jetstream {{\n  domain: {json.dumps(self.domain)}\n}}\n")

    def command(self) -> Sequence[str]:
        config = ["--config", str(self.config_path)] if self.domain is not None else []
        return [
            self.executable,
            "--addr", "127.0.0.1",
            "--port", str(self.port),
            "--http_port", str(self.monitor_port),
            "--server_name", "msgdel-testbed",
            "--jetstream",
            "--store_dir", str(self.store_dir),
            *config,
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        """The monitoring endpoint's /healthz answers ok (it includes JetStream's health)."""
        healthz = f"http://127.0.0.1:{self.monitor_port}/healthz"
        with urllib.request.urlopen(healthz, timeout=1) as response:
            return bool(response.status == 200)
