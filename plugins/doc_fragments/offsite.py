# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  offsite_url:
    description:
      - The off-site repository, C(s3://BUCKET/PREFIX), in S3-compatible object storage. It holds the
        same layout as O(backup_dir) (C(full/), C(globals/), C(base/), C(wal/)), each backup's metadata
        object written last.
      - Without a PREFIX, the managed host's name is the prefix, so every host of a fleet writes under
        its own. To reach another host's backups (its host lost), name its prefix.
      - A bucket that does not exist is an error (exit code 2); it is never created here.
    type: str
    version_added: 0.2.0
  s3_endpoint_url:
    description:
      - Endpoint of S3-compatible storage (Ceph radosgw, MinIO, ...), C(https://HOST[:PORT]).
      - When unset, C(AWS_ENDPOINT_URL_S3) and C(AWS_ENDPOINT_URL) of the managed host's environment,
        then AWS S3 itself.
    type: str
    version_added: 0.2.0
  s3_region:
    description: Region of the bucket. When unset, C(AWS_REGION), the AWS profile's, then C(us-east-1).
    type: str
    version_added: 0.2.0
  s3_access_key:
    description:
      - Access key id. Give it with O(s3_secret_key), from Ansible Vault. Never logged.
      - When unset, boto3's chain applies on the managed host - C(AWS_ACCESS_KEY_ID), C(~/.aws/credentials)
        (or C(AWS_SHARED_CREDENTIALS_FILE)), an instance or container role.
    type: str
    version_added: 0.2.0
  s3_secret_key:
    description: Secret access key belonging to O(s3_access_key). Never logged, never on a command line.
    type: str
    version_added: 0.2.0
  s3_ca_bundle:
    description:
      - PEM file on the managed host of the CA that signed the endpoint's certificate (default
        C(AWS_CA_BUNDLE), then the system's CAs).
      - TLS is always verified; there is no switch to turn verification off.
    type: path
    version_added: 0.2.0
  s3_addressing_style:
    description:
      - V(path) (C(https://HOST/BUCKET/KEY)) or V(virtual) (C(https://BUCKET.HOST/KEY)) requests.
      - When unset, V(path) with O(s3_endpoint_url), V(virtual) on AWS.
    type: str
    choices: [path, virtual]
    version_added: 0.2.0
  recipients:
    description:
      - age recipients (X25519 public keys, C(age1...)) to encrypt the off-site copy to. Once one is set,
        every object pushed (logical backups, globals, base backups, WAL) is encrypted with C(age) on its
        way to the bucket; the local backup directory stays as it is.
      - Several keys open the same backups (an operators' key and an escrow key in the safe). A new set
        applies to new backups only; older ones stay readable with their old identities.
      - A repository that received an encrypted push refuses plaintext from then on.
    type: list
    elements: str
    default: []
    version_added: 0.2.0
  identity:
    description:
      - age identity (private key, C(AGE-SECRET-KEY-1...)) that decrypts the off-site copy, for restores
        and drills. Give it from Ansible Vault. Never logged; handed to C(age) through a pipe on the
        managed host, never written to a file there.
      - Mutually exclusive with O(identity_file). Keep it off the database hosts' configuration, since pushing
        needs O(recipients) only.
    type: str
    version_added: 0.2.0
  identity_file:
    description:
      - Path on the managed host of an age identity file (mode 0600, refused otherwise), instead of
        O(identity).
    type: path
    version_added: 0.2.0
requirements:
  - boto3 on the managed host when O(offsite_url) is set (Debian's C(python3-boto3))
  - age on the managed host when O(recipients) is set or an encrypted backup is read (Debian's C(age))
"""
