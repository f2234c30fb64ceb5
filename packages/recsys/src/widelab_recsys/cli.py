"""The ``widelab recsys`` command and report hook."""

from __future__ import annotations

from widelab_core.command import Command

command = Command(name="recsys", help="Two-stage recommenders.")
