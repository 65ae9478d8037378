"""``python -m asd_utils.run``: the notebook runner (same as ``python -m asd_utils.run.runner``)."""

from asd_utils.run.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
