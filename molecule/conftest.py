"""What the Molecule scenarios' testinfra checks (molecule/*/tests) share; pytest of tests/ never loads it.

Molecule runs testinfra with --connection ansible. testinfra has no native way to a host Ansible reaches
through podman, so each command and each file attribute becomes a whole `ansible -m shell` run: about
3 s each on 2 shared cores, four of the fleet scenario's twelve minutes. The same commands go to the
same containers, as root as before, through `podman exec` instead (testinfra's podman backend).
"""

import pytest
import testinfra

PODMAN_CONNECTIONS = ("podman", "containers.podman.podman")


@pytest.fixture(scope="module")
def host(_testinfra_host):
    backend = _testinfra_host.backend
    if backend.NAME != "ansible" or backend.get_variables().get("ansible_connection") not in PODMAN_CONNECTIONS:
        return _testinfra_host
    return testinfra.get_host("podman://" + backend.host)
