"""Where a recovery puts a backup's tablespaces, and what it refuses (no server: directories only)."""

import os

import pytest

from pgsafe.core.errors import ConfigError, VerificationFailed
from pgsafe.physical import tablespaces as ts


def test_tablespace_map_lines_with_escaped_characters():
    text = "16385 /srv/a b\n16386 /srv/odd\\\nname\\\\x\n"
    assert ts.parse_map(text) == {16385: "/srv/a b", 16386: "/srv/odd\nname\\x"}
    with pytest.raises(VerificationFailed):
        ts.parse_map("nonsense\n")


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, {}),
        ({}, {}),
        ({"/a/": "/b"}, {"/a": "/b"}),
        (["/a=/b", "/c\\=d=/e"], {"/a": "/b", "/c=d": "/e"}),
        ("/a=/b", {"/a": "/b"}),
        ([{"old": "/a", "new": "/b"}], {"/a": "/b"}),
    ],
)
def test_mapping_forms(value, expected):
    assert ts.parse_mapping(value) == expected


@pytest.mark.parametrize("value", ["/a", "a=/b", "/a=b", ["/a=/b", "/a=/c"], 3, ["/a=/b=/c"]])
def test_bad_mappings_are_configuration_errors(value):
    with pytest.raises(ConfigError):
        ts.parse_mapping(value)


def backup(tmp_path, oids=(16385,)):
    path = tmp_path / "backup"
    path.mkdir()
    (path / "base.tar.zst").write_bytes(b"")
    for oid in oids:
        (path / ("%d.tar.zst" % oid)).write_bytes(b"")
    return str(path)


def meta(tmp_path, live=True):
    location = tmp_path / "live"
    if live:
        location.mkdir()
        (location / "PG_15_202209061").mkdir()
    return {"tablespaces": [{"oid": 16385, "name": "fast", "location": str(location)}]}


def test_default_place_is_beside_the_data_directory(tmp_path):
    data = str(tmp_path / "pitr" / "data")
    [target] = ts.plan(meta(tmp_path), backup(tmp_path), "b1", data, {})
    assert target.path == data + "_tblspc/16385" and target.name == "fast"


@pytest.mark.parametrize(
    "new, says",
    [
        ("live", "live tablespace fast"),
        ("live/inside", "live tablespace fast"),
        ("", "live tablespace fast"),  # the parent of the live directory holds it
        ("pitr/data/ts", "inside the data directory"),
    ],
)
def test_unsafe_places_are_refused(tmp_path, new, says):
    m = meta(tmp_path)
    data = str(tmp_path / "pitr" / "data")
    with pytest.raises(ConfigError) as exc:
        ts.plan(m, backup(tmp_path), "b1", data, {m["tablespaces"][0]["location"]: str(tmp_path / new)})
    assert says in str(exc.value)


def test_original_directory_is_allowed_where_it_does_not_exist(tmp_path):
    """On another host (the source's directories absent here), the original place is a place like any other."""
    m = meta(tmp_path, live=False)
    location = m["tablespaces"][0]["location"]
    [target] = ts.plan(m, backup(tmp_path), "b1", str(tmp_path / "data"), {location: location})
    assert target.path == location


def test_unknown_or_missing_archives_and_stray_mappings(tmp_path):
    m = meta(tmp_path)
    with pytest.raises(ConfigError, match="does not describe"):
        ts.plan(m, backup(tmp_path, (16385, 16390)), "b1", str(tmp_path / "data"), {})
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ConfigError, match="no tablespace of base backup"):
        ts.plan({"tablespaces": []}, str(plain), "b1", str(tmp_path / "d"), {"/srv/x": "/srv/y"})


def test_a_described_archive_that_is_missing_is_damage(tmp_path):
    path = tmp_path / "b"
    path.mkdir()
    with pytest.raises(VerificationFailed):
        ts.plan(meta(tmp_path), str(path), "b1", str(tmp_path / "data"), {})


def test_a_place_that_is_not_empty_is_refused(tmp_path):
    data = str(tmp_path / "data")
    os.makedirs(data + "_tblspc/16385")
    open(data + "_tblspc/16385/file", "w").close()
    with pytest.raises(ConfigError, match="not empty"):
        ts.plan(meta(tmp_path), backup(tmp_path), "b1", data, {})


def test_link_points_pg_tblspc_at_the_places_and_drops_the_map(tmp_path):
    data = tmp_path / "data"
    (data / "pg_tblspc").mkdir(parents=True)
    (data / "tablespace_map").write_text("16385 /live\n")
    target = ts.Target(16385, "fast", "/live", "16385.tar", str(tmp_path / "restored"))
    ts.link(str(data), [target])
    assert os.readlink(str(data / "pg_tblspc" / "16385")) == str(tmp_path / "restored")
    assert not (data / "tablespace_map").exists()


def test_with_overwrite_a_previous_recoverys_copy_goes_aside_with_its_cluster(tmp_path):
    data = str(tmp_path / "data")
    old_copy = data + "_tblspc/16385"
    os.makedirs(old_copy)
    open(os.path.join(old_copy, "file"), "w").close()
    os.makedirs(os.path.join(data, "pg_tblspc"))
    os.symlink(old_copy, os.path.join(data, "pg_tblspc", "16385"))
    m, path = meta(tmp_path), backup(tmp_path)
    with pytest.raises(ConfigError, match="not empty"):
        ts.plan(m, path, "b1", data, {})
    [target] = ts.plan(m, path, "b1", data, {}, overwrite=True)
    assert target.move_aside
    moved = data + ".pgsafe-old-1"
    os.rename(data, moved)  # as prepare_data_directory does with the replaced cluster
    ts.move_aside([target], moved, lambda msg: None)
    assert not os.path.exists(old_copy)
    aside = os.readlink(os.path.join(moved, "pg_tblspc", "16385"))
    assert aside.startswith(old_copy + ".pgsafe-old-") and os.path.isfile(os.path.join(aside, "file"))
