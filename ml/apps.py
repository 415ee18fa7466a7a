from __future__ import annotations

from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "ml"
    verbose_name = "Learning"

    def ready(self) -> None:
        # coordination never imports ml: the strategy is handed to it here (no numpy or
        # scikit-learn is imported by this; they load on the first prediction).
        from coordination.routing import register_strategy
        from ml.strategy import Predictive

        register_strategy(Predictive())
