"""Money: prices and cost math (``pricing``, a leaf), budgets, costs reports and exports."""
