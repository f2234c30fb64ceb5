import doctest

import pytest

import widelab_recsys.nominators
import widelab_recsys.ranker
import widelab_recsys.two_stage


@pytest.mark.parametrize(
    "module",
    [widelab_recsys.nominators, widelab_recsys.ranker, widelab_recsys.two_stage],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
