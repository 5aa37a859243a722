"""``python -m aigcsim ...``: the same command as the ``aigcsim`` console script."""

from aigcsim.cli.main import main

if __name__ == "__main__":
    main()
