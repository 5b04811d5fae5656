"""token-sidecar: OAuth 2.0 token-endpoint enforcement in front of an existing server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("token-sidecar")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
