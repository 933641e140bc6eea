"""What the service keeps of its answers over time: the prediction log and the feedback on it."""
