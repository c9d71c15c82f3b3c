"""How a value and its gradient are estimated: draws, score-function surrogates, closed-form and Monte Carlo KL."""
