"""The notebook tier reads the one shared smoke run, ``smoke_run``, defined in ``tests/shared_smoke_run.py``
and registered by ``tests/conftest.py`` so that the book and browser tests share it too."""
