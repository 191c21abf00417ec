"""``python -m clinical_cli``: the same as the ``clinical`` console script."""

from clinical_cli.app import main

main()
