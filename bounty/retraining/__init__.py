"""Retraining and redeployment: collected images retrain the model, a gate decides, live bounties move."""
