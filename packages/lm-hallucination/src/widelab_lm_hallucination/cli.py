"""The ``widelab lm`` command and report hook."""

from __future__ import annotations

from widelab_core.command import Command

command = Command(name="lm", help="Language models trained on a knowledge graph.")
