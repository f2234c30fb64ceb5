import widelab_lm_hallucination
from widelab_lm_hallucination.cli import command


def test_version_and_command():
    assert widelab_lm_hallucination.__version__ == "0.1.0"
    assert command.name == "lm"
