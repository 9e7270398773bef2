"""``python -m cli`` is the ``redline`` command."""

from cli.main import main

main()
