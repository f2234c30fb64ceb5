import widelab_recsys
from widelab_recsys.cli import command


def test_version_and_command():
    assert widelab_recsys.__version__ == "0.1.0"
    assert command.name == "recsys"
