"""Evaluation: the official DCASE metrics, bootstrap intervals, submission files, the tidy result
tables that every notebook writes and the comparison reads, and the reports' published numbers.

Imports ``storage`` and ``data`` only: what is measured never depends on how it was computed.
"""
