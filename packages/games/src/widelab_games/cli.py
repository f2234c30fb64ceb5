"""The ``widelab games`` command and report hook."""

from __future__ import annotations

from widelab_core.command import Command

command = Command(name="games", help="Exposure games.")
