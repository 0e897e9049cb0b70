"""Lean text without Lean: lexing, unicode abbreviations, completion and input checks.

``syntax`` masks comments and literals and finds declared names; ``abbreviations`` is Lean's
table of unicode input abbreviations (``ABBREVIATIONS``, ``expand("to") == "→"``), public for
Python code that writes Lean text; ``completion`` answers Tab, Shift-Tab and Enter.
"""
