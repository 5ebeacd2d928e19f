"""The old name of :mod:`imgzoo.catalogue` (what the zoo knows about its tasks: descriptions and
named weights from registry.toml files), kept so that ``import imgzoo.registry`` goes on working.

The name-to-class registry of installed tasks is :mod:`imgzoo.plugins`. This module *is*
:mod:`imgzoo.catalogue`, not a copy: a change made through either name is seen through both.
"""

import sys

from imgzoo import catalogue

sys.modules[__name__] = catalogue
