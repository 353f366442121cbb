"""`python -m msgdel.cli`: the same as the `msgdel` console script."""

from msgdel.cli import main

main()
