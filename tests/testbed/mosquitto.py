"""Mosquitto (Debian's package) with a generated config and persistence in the work folder."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

from tests.testbed.process import BrokerProcess, find_executable, free_port, port_open

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


class MosquittoServer(BrokerProcess):
    """A private mosquitto on loopback: anonymous access, retained messages kept across restarts."""

    name = "mosquitto"
    start_timeout = 20.0

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.executable = find_executable("mosquitto", "/usr/sbin/mosquitto")
        self.port = free_port()
        self.config_path = self.workdir / "mosquitto.conf"
        self.data_dir = self.workdir / "data"

    def prepare(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        self.config_path.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    # Only used when run as root: keep the user that owns the work folder.
                    f"user {getpass.getuser()}",
                    "persistence true",
                    f"persistence_location {self.data_dir}/",
                    "autosave_interval 1",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "",
                ]
            )
        )

    def command(self) -> Sequence[str]:
        return [self.executable, "-c", str(self.config_path)]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return port_open(self.port)
