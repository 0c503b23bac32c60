"""Where the deployment files the deploy tests check live: the repository root and deploy/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
