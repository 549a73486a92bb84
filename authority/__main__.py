"""`python -m authority` runs the command line."""

from authority.cli import main

main()
