"""Answers as JSON (for scripts: the service's fields, unchanged) or as rich tables (for people)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.table import Table

from clinical_cli.api import Json


class OutputFormat(StrEnum):
    JSON = "json"
    TABLE = "table"


def render(answer: Json, output: OutputFormat, console: Console) -> None:
    if output is OutputFormat.JSON:
        # Plain print, no rich markup or wrapping: the bytes a script parses.
        console.file.write(json.dumps(answer, indent=2, sort_keys=True) + "\n")
        return
    rows = _only_list_of_records(answer)
    console.print(records_table(rows) if rows is not None else fields_table(answer))


def render_line(answer: Json, output: OutputFormat, console: Console, summary: str) -> None:
    """One line per streamed item: a JSON object (JSON lines), or ``summary`` for people."""
    if output is OutputFormat.JSON:
        console.file.write(json.dumps(answer, sort_keys=True) + "\n")
    else:
        console.print(summary, highlight=False, markup=False)
    console.file.flush()


def fields_table(answer: Json) -> Table:
    table = Table(show_header=True, header_style="bold")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for name, value in flatten(answer).items():
        table.add_row(name, value)
    return table


def records_table(records: list[Json]) -> Table:
    flat = [flatten(record) for record in records]
    columns = list(dict.fromkeys(name for record in flat for name in record))
    table = Table(show_header=True, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for record in flat:
        table.add_row(*(record.get(column, "") for column in columns))
    return table


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}, "c": [2, 3]}`` becomes ``{"a.b": "1", "c": "2, 3"}``; lists of
    records become ``name[0].field``."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, nested in value.items():
            flat |= flatten(nested, f"{prefix}.{key}" if prefix else str(key))
        return flat
    if isinstance(value, list) and any(isinstance(item, dict) for item in value):
        flat = {}
        for index, item in enumerate(value):
            flat |= flatten(item, f"{prefix}[{index}]")
        return flat
    if isinstance(value, list):
        return {prefix: ", ".join(str(item) for item in value)}
    return {prefix: str(value).lower() if isinstance(value, bool) else str(value)}


def _only_list_of_records(answer: Json) -> list[Json] | None:
    if len(answer) == 1:
        (value,) = answer.values()
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return value
    return None
