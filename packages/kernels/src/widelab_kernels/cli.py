"""The ``widelab kernels`` command and report hook."""

from __future__ import annotations

from widelab_core.command import Command

command = Command(name="kernels", help="Infinite-width NNGP and NTK kernels.")
