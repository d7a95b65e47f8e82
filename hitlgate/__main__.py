"""``python -m hitlgate``: the same command line as the ``hitlgate`` console script (for a checkout not installed)."""

from hitlgate.cli import main

if __name__ == "__main__":
    main()
