"""AST + declared signatures -> a checked tree: every reference resolved, every sampling decided. No torch."""
