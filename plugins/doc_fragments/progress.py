# -*- coding: utf-8 -*-
# Copyright: pgsafe engineers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  progress_interval:
    description:
      - Seconds between progress lines of the long steps (dump, base backup, checksum, decompression,
        load, row counts, uploads and downloads of the off-site copy) in the module's RV(log) result; each says the bytes done, the rate and, where the total
        is known or can be estimated, the time left. V(0) adds none.
    type: float
    default: 10.0
    version_added: 0.2.0
"""
