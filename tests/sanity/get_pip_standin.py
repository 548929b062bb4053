"""Stand-in for ansible-test's downloaded get-pip bootstrap script (no such download here).

ansible-test runs this file with pip's install options.  We bootstrap pip from the
interpreter's own ensurepip and then let that pip install what was asked for.
"""

import ensurepip
import os
import subprocess
import sys


def main():
    ensurepip.bootstrap(upgrade=True)
    # ensurepip points PIP_CONFIG_FILE at /dev/null, hiding the machine's pip configuration
    # (index, certificates): every later download would then fail.
    os.environ.pop("PIP_CONFIG_FILE", None)
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    if not args:
        return 0
    return subprocess.call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    sys.exit(main())
