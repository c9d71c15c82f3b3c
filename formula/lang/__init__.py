"""Text -> AST: the grammar (shipped inside this package), the parser and the AST node types. No torch."""
