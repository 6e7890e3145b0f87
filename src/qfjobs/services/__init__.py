"""The service layer: the rules, the transactions and the enqueueing."""
