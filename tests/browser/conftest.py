"""Browser tests: JupyterLab driven by Playwright in an installed Chromium (never downloaded)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in a headless Chromium (Playwright)")
