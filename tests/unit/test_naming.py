import pytest

from pgsafe.core.errors import ConfigError
from pgsafe.core.naming import file_slug, is_temp_of, parse_iso, validate_database_name, validate_plain_name


@pytest.mark.parametrize("name", ["../../etc", "a/b", "x; rm -rf /", "ü", "..", "a b"])
def test_slug_is_a_single_safe_component(name):
    slug = file_slug(name)
    assert "/" not in slug and " " not in slug and ".." not in slug
    assert slug


def test_slug_is_injective_for_distinct_names():
    assert file_slug("a.b") != file_slug("a_b") != file_slug("a%2Eb")


@pytest.mark.parametrize("bad", ["", "a\x00b", "a\nb", "x" * 64])
def test_invalid_database_names(bad):
    with pytest.raises(ConfigError):
        validate_database_name(bad)


@pytest.mark.parametrize("bad", ["", "..", ".", "a/b", "x\x00"])
def test_plain_names(bad):
    with pytest.raises(ConfigError):
        validate_plain_name(bad, "backup")


def test_parse_iso_forms():
    assert parse_iso("2026-11-24T02:00:00Z").hour == 2
    assert parse_iso("garbage") is None
    assert parse_iso(None) is None


@pytest.mark.parametrize(
    "name, prefix, expected",
    [
        (".shop_full_20261125_063704.dump.tmp-17-ab12cd34", "shop_full_", True),
        (".shop_full_20261125_063704_2.dump.tmp-17-ab12cd34", "shop_full_", True),
        (".shop_base_20261125_063704.tmp-17-ab12cd34", "shop_base_", True),
        # Database 'shop_full_1' and one named like a stamp: their files start with '.shop_full_'.
        (".shop_full_1_full_20261125_063704.dump.tmp-17-ab12cd34", "shop_full_", False),
        (".shop_full_20261125_063704_full_20261125_063705.dump.tmp-17-ab", "shop_full_", False),
        ("shop_full_20261125_063704.dump", "shop_full_x", False),
        (".port5432_base_20261125_063704.tmp-1-ab", "port5433_base_", False),
    ],
)
def test_temp_names_belong_only_to_their_own_series(name, prefix, expected):
    assert is_temp_of(name, prefix) is expected
