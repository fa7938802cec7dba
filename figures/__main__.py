"""python -m figures --db DB [--run ID | --student S] --out DIR [--rule R]: every table and figure."""

import sys

from curate.cli import main

raise SystemExit(main(["figures", *sys.argv[1:]]))
