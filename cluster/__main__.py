"""``python -m cluster`` is the ``redline`` command."""

from cluster.cli import main

main()
