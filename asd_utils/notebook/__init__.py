"""What a notebook calls: the run context (profile, seed, device, ``ctx.record``), the dataset
tour, the results explorer, plots and the report catalogue. Library code below never imports it.
"""
