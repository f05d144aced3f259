"""agent-sandbox: run LLM coding agents, or any command, confined on Linux.

The public surface is deliberately small and pinned by ``tests/unit/test_public_api.py``;
everything else lives in private ``_modules`` and may change without notice.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
