"""What a user reads in ansible-doc: every module points to its neighbours and shows what it returns."""

import glob
import os

import pytest
from moduledocs import MODULES, ROOT, module_block, yaml_block


@pytest.mark.parametrize("module", MODULES)
def test_module_points_to_related_modules_that_exist(module):
    related = [entry["module"] for entry in module_block(module, "DOCUMENTATION").get("seealso") or []]
    assert related, "%s has no seealso" % module
    for name in related:
        namespace, _sep, short = name.rpartition(".")
        assert namespace == "pgsafe.backup" and short in MODULES and short != module, name


@pytest.mark.parametrize("module", MODULES)
def test_every_returned_key_shows_a_sample_or_its_contents(module):
    returned = module_block(module, "RETURN")
    assert returned, "%s documents no return values" % module
    bare = [key for key, spec in returned.items() if "sample" not in spec and "contains" not in spec]
    assert not bare, "%s: RETURN keys without a sample: %s" % (module, bare)


PLUGIN_FILES = sorted(
    os.path.relpath(p, ROOT)
    for kind in ("modules", "filter", "doc_fragments")
    for p in glob.glob(os.path.join(ROOT, "plugins", kind, "*.py"))
    if not os.path.basename(p).startswith("_")
)


@pytest.mark.parametrize("path", PLUGIN_FILES)
def test_plugin_documentation_is_yaml_that_ansible_doc_can_read(path):
    for var in ("DOCUMENTATION", "EXAMPLES", "RETURN"):
        try:
            yaml_block(os.path.join(ROOT, path), var)
        except AssertionError:  # a doc fragment has no EXAMPLES, a filter may have no RETURN
            assert var != "DOCUMENTATION", path
