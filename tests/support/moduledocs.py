"""The documentation blocks of the collection's modules and doc fragments, read as data."""

import ast
import os

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES_DIR = os.path.join(ROOT, "plugins", "modules")
MODULES = sorted(n[:-3] for n in os.listdir(MODULES_DIR) if n.endswith(".py") and not n.startswith("_"))


def yaml_block(path, var):
    """The YAML that a file assigns to VAR (at any depth: doc fragments keep it in a class), read
    from the syntax tree so that the quoting style does not matter."""
    with open(path) as fh:
        tree = ast.parse(fh.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == var for t in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value))
    raise AssertionError("%s assigns no %s" % (path, var))


def module_block(name, var):
    return yaml_block(os.path.join(MODULES_DIR, name + ".py"), var)


def module_options(name):
    """A module's options, those of its documentation fragments included."""
    doc = module_block(name, "DOCUMENTATION")
    options = dict(doc.get("options") or {})
    for fragment in doc.get("extends_documentation_fragment") or []:
        namespace, _sep, short = fragment.rpartition(".")
        assert namespace == "pgsafe.backup", fragment
        shared = yaml_block(os.path.join(ROOT, "plugins", "doc_fragments", short + ".py"), "DOCUMENTATION")
        options.update(shared["options"])
    return options
