"""Print the README's commands that CI runs verbatim: the ```bash blocks marked `ci`.

A newcomer copies these blocks; CI runs exactly their text, so the README cannot drift from what
is tested. Exits non-zero if there are none, so a README edit cannot silently drop them.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^```bash[ \t]+ci[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)

readme = Path(__file__).resolve().parent.parent / "README.md"
commands = [match["body"].strip() for match in FENCE.finditer(readme.read_text(encoding="utf-8"))]
if not commands:
    sys.exit(f"{readme}: no ```bash ci blocks: nothing for CI to run")
print("\0".join(commands), end="")
