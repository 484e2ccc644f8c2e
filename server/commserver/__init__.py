# SPDX-License-Identifier: Apache-2.0
"""callhome reference Communication Server (see server/README.md)."""
