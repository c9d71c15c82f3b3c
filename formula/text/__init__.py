"""AST -> text: the ASCII, LaTeX and Unicode printers and equivalence by canonical form (sympy). No torch."""
