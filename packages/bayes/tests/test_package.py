import widelab_bayes
from widelab_bayes.cli import command


def test_version_and_command():
    assert widelab_bayes.__version__ == "0.1.0"
    assert command.name == "bayes"
