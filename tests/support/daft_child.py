"""A dashboard process configured by its environment (O11Y_ENGINE=daft, O11Y_RAY_ADDRESS):
asks the Daft engine the Daft tests' questions and prints the answers as one JSON line. The
test compares them with the local store's (tests/test_daft_engine.py)."""

from __future__ import annotations

import json
import os

from o11y_data import load_settings
from o11y_data.query.route import engine_for
from tests.test_daft_engine import _dump, _questions


def main() -> None:
    settings = load_settings(dict(os.environ), secrets_paths=[])
    engine = engine_for(settings)
    assert engine is not None
    state = engine.table_state()
    print(json.dumps([_dump(engine.answer(q, state)) for q in _questions()]))


if __name__ == "__main__":
    main()
