import widelab_games
from widelab_games.cli import command


def test_version_and_command():
    assert widelab_games.__version__ == "0.1.0"
    assert command.name == "games"
