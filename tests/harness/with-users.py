#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""with-users.py PROGRAM [ARGS…]: create the service users (as root) and exec PROGRAM.

For C tests that drop to the real service users but have no harness of their own.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from chtest import ensure_users, is_root

if is_root():
    ensure_users()
os.execv(sys.argv[1], sys.argv[1:])
