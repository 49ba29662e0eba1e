"""Locustfile: one GET per request to any HTTP service (calibration against drillbit.testing.groundtruth)."""

from __future__ import annotations

from typing import Any

from locust import FastHttpUser, constant, task

import drillbit.load.recorder  # noqa: F401  (registers the per-request recorder)
from drillbit.load.openmodel import OpenModelUser, ProfileShape

__all__ = ["OpenPing", "Ping", "PingShape"]


class Ping(FastHttpUser):
    wait_time = constant(0)

    @task
    def ping(self) -> None:
        self.client.get("/ping", name="GET /ping")


class OpenPing(OpenModelUser):
    def fire(self, context: dict[str, Any]) -> None:
        self.client.get("/ping", name="GET /ping", context=context)


class PingShape(ProfileShape):
    open_user = OpenPing
    closed_user = Ping
