"""Disruption handling: a rule on the hub's flight events starts the disruption workflow (ASL),
which notifies every affected passenger and, for cancellations and missed connections, offers
them other flights through a signed link."""
