"""``python -m eurosat_finetune`` is the ``eurosat`` command."""

from eurosat_finetune.cli import main

if __name__ == "__main__":
    main()
