"""Distillation: losses, evaluation metrics, and the teacher / student training loops."""
