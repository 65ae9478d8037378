"""Running the notebooks: the papermill runner behind ``make reproduce`` (``python -m asd_utils.run``),
the kernel client that executes a notebook and the watchdog that stops a stuck kernel. Top layer.
"""
