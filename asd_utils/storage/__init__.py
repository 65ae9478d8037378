"""Storage: how the package writes files and keys its caches (lowest layer; imports only ``paths``).

:mod:`.atomic` writes every file through a temporary sibling and ``os.replace`` and holds
cross-process file locks; :mod:`.keys` hashes content and code into the one cache key
(``cache_key(ingredients, code=__name__)``); :mod:`.cache` is the one array cache
(``cached_arrays``) and names training-run folders (``run_dir``).
"""
