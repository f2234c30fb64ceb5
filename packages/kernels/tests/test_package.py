import widelab_kernels
from widelab_kernels.cli import command


def test_version_and_command():
    assert widelab_kernels.__version__ == "0.1.0"
    assert command.name == "kernels"
