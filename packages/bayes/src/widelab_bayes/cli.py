"""The ``widelab bayes`` command and report hook."""

from __future__ import annotations

from widelab_core.command import Command

command = Command(name="bayes", help="Wide Bayesian neural networks.")
