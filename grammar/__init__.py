"""The Lark grammar of the objective language, shipped as package data (formula.grammar)."""
