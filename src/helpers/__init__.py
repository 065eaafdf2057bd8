"""The hands-on Transformer course's canonical code: what the notebooks build, later notebooks import.

Modules by concept: ``attention``, ``model``, ``generate``, ``data``, ``tokenizer``, ``train``, ``viz``,
``checks``. Import them directly (``from helpers.model import GPT``); this package imports nothing heavy.
"""

__version__ = "0.1.0"
