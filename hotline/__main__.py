"""``python -m hotline``: the same as the ``hotline`` command."""

from hotline.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
