"""What requests cost and what clients may still spend: prices, budgets, limits shared through Redis."""
