"""``python -m samic_vos``: the same as the ``samic-vos`` command."""

from samic_vos.commands.cli import main

if __name__ == "__main__":  # worker processes started by spawn re-import this module
    raise SystemExit(main())
