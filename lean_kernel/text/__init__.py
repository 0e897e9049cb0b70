"""Lean text without Lean: lexing, unicode abbreviations, completion and input checks."""
