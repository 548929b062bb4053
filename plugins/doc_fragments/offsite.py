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
requirements:
  - boto3 on the managed host when O(offsite_url) is set (Debian's C(python3-boto3))
"""
