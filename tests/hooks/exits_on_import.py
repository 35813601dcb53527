"""A handler module whose import ends the process quietly (as a stray os._exit would)."""

import os

os._exit(0)
