import pytest

from edgenas.errors import ArchitectureError
from edgenas.space.genome import Architecture, Block


def test_string_form_round_trips():
    text = "r32-w0.75-[k3e6,k5e4][k3e3][k7e6,k5e4,k3e3]"
    arch = Architecture.parse(text)
    assert str(arch) == text
    assert Architecture.parse(str(arch)) == arch
    assert arch.depths == (2, 1, 3)
    assert arch.stages[0][1] == Block(5, 4)
    assert arch.width == 0.75 and arch.resolution == 32


def test_equal_architectures_hash_equal():
    a = Architecture(32, 1, ((Block(3, 6),),))
    b = Architecture.parse("r32-w1.0-[k3e6]")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, Architecture.parse("r32-w1-[k5e6]")}) == 2
    assert str(b) == "r32-w1-[k3e6]"


def test_architecture_is_immutable():
    arch = Architecture.parse("r32-w1-[k3e6]")
    with pytest.raises(AttributeError):
        arch.resolution = 64  # type: ignore[misc]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("garbage", "cannot parse architecture"),
        ("r32-w1-[k3e6][k3x6]", "cannot parse block 'k3x6'"),
        ("r32-w1-", "cannot parse architecture"),
        ("r0-w1-[k3e6]", "resolution must be a positive integer"),
        ("r32-w0-[k3e6]", "width multiplier must be positive"),
    ],
)
def test_bad_strings_name_the_problem(text, fragment):
    with pytest.raises(ArchitectureError, match=fragment):
        Architecture.parse(text)
