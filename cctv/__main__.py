"""`python -m cctv` is `cctv`."""

from cctv.cli import main

main()
