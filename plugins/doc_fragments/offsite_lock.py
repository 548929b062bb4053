# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  s3_object_lock:
    description:
      - S3 Object Lock for every object the upload creates - V(governance) or V(compliance) sets a
        retain-until date on each object; V(off) sets none.
      - Until that date no credentials can delete the object's version (V(compliance)), or only ones
        allowed to bypass governance, which pgsafe never asks for (V(governance)). The bucket is
        versioned, so a later write over a key keeps the locked version.
      - The bucket must have been created with Object Lock; otherwise the task fails (exit code 2)
        before anything is uploaded.
    type: str
    choices: ['off', governance, compliance]
    default: 'off'
    version_added: 0.2.0
  s3_object_lock_days:
    description:
      - How many days each object stays locked, counted from its upload.
      - When unset, the off-site retention, 90 days (see C(pgsafe offsite-retention)).
    type: int
    version_added: 0.2.0
"""
