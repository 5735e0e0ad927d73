"""The targets the benchmarks judge: issue 12's, plus issue 10's and 11's that still stand,
declared once, judged on the rows of one run, and printed as one block at the end of it.

Each target names the row holding the figure (by key) and how it is judged: a ratio to the
row's own baseline or to another row of the same run (mosquitto's), a bound on the value
itself, or the row's own outcome (the throttled stream: nothing lost). A target whose suite
was not run is "not run"; one whose figure is missing (a failed measurement, a peer not
installed) is "not measured", with the reason. The verdicts also fill the target and verdict
columns of the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from common import Row, fmt_value, median

HOLDS, MISSES, NOT_MEASURED, NOT_RUN = "holds", "MISSES", "not measured", "not run"


class Unmeasured(Exception):
    """The figure a target needs is missing; the text says why."""


#: (row, every row by key) -> (holds, the figures as a sentence); Unmeasured if missing.
Judge = Callable[[Row, dict[str, Row]], tuple[bool, str]]


@dataclass(frozen=True)
class Target:
    issue: int
    suite: str
    text: str
    #: What the table's target column says for the row.
    short: str
    key: str
    judge: Judge


@dataclass(frozen=True)
class Verdict:
    issue: int
    text: str
    verdict: str
    figures: str
    key: str


def _value(row: Row | None, what: str) -> float:
    if row is None:
        raise Unmeasured(f"no {what} row")
    if row.value is None:
        raise Unmeasured(f"{row.label}: {row.note or 'no figure'}")
    return row.value


def ratio(bound: float, *, at_least: bool, reference: str | None = None) -> Judge:
    """value / reference within ``bound``: the reference is the row ``reference`` of the same
    run, or the row's own baseline."""
    def judge(row: Row, rows: dict[str, Row]) -> tuple[bool, str]:
        value = _value(row, row.key)
        if reference is not None:
            ref = rows.get(reference)
            base, label = _value(ref, reference), ref.label if ref else reference
        elif row.baseline:
            base, label = row.baseline, row.baseline_label
        else:
            raise Unmeasured(f"{row.label}: no baseline figure")
        r = value / base
        return (r >= bound if at_least else r <= bound,
                f"{fmt_value(value, row.unit)} vs {fmt_value(base, row.unit)} ({label}): "
                f"{r:.2f}x")
    return judge


def at_most(bound: float) -> Judge:
    """The value itself, in its row's unit, at most ``bound``."""
    def judge(row: Row, rows: dict[str, Row]) -> tuple[bool, str]:
        value = _value(row, row.key)
        text = fmt_value(value, row.unit)
        if row.baseline is not None and row.baseline_label:
            text += f" ({row.baseline_label}: {fmt_value(row.baseline, row.unit)})"
        return value <= bound, text
    return judge


def excess_at_most(bound: float) -> Judge:
    """value - the row's baseline at most ``bound``, in the row's unit."""
    def judge(row: Row, rows: dict[str, Row]) -> tuple[bool, str]:
        value = _value(row, row.key)
        if row.baseline is None:
            raise Unmeasured(f"{row.label}: no baseline figure")
        more = value - row.baseline
        return more <= bound, (f"{fmt_value(value, row.unit)} vs "
                               f"{fmt_value(row.baseline, row.unit)} ({row.baseline_label}): "
                               f"{more:+.1f} {row.unit}")
    return judge


#: The throttled stream's writer counts as slowed when its lines/s are at most this share of
#: the unthrottled writer's (held back to the reader's half speed, less what fits in flight).
SLOWED = 0.8


def nothing_lost(row: Row, rows: dict[str, Row]) -> tuple[bool, str]:
    """The throttled stream: every run had every line in order and send exiting 0
    (``extra["nothing_lost"]``), and the writer was slowed: its lines/s at most
    :data:`SLOWED` of the unthrottled writer's."""
    runs = row.extra.get("runs") or []
    failed = row.extra.get("failed") or ""
    if not runs and not failed:
        raise Unmeasured(f"{row.label}: {row.note or 'no run'}")
    failed = " ".join(failed.split())
    if not runs:
        return False, f"FAILED: {failed[:400]}"
    text = (f"all {row.extra['count']:,} lines in order and send exiting 0 in {len(runs)} "
            f"run(s); writer {fmt_value(row.value, row.unit)}")
    slowed = row.ratio is not None and row.ratio <= SLOWED
    if row.baseline:
        text += (f" vs {fmt_value(row.baseline, row.unit)} unthrottled ({row.ratio:.2f}x: "
                 f"{'slowed' if slowed else 'NOT slowed'}, bound {SLOWED}x)")
    reader = median([r["throttle_rate"] for r in runs])
    held = median([row.extra["count"] - r["lines_at_writer_exit"] for r in runs])
    text += (f", reader throttled to {reader:,.0f} lines/s; {held:,.0f} lines still on their "
             "way when send exited")
    if failed:
        text += f"; a run FAILED: {failed[:300]}"
    return bool(row.extra.get("nothing_lost")) and slowed, text


TARGETS: tuple[Target, ...] = (
    Target(12, "stream", "CLI stream, 100k: send --lines -> hub -> listen --json > file >= 1.0x "
           "mosquitto_pub -l -> mosquitto -> mosquitto_sub", ">= 1x mosquitto", "stream_cli",
           ratio(1.0, at_least=True, reference="stream_mosquitto")),
    Target(12, "stream", "CLI stream, reader throttled to half the writer's speed: nothing "
           "lost, the writer slowed, not failed", "nothing lost", "stream_cli_throttled",
           nothing_lost),
    Target(12, "stream", "library stream >= 0.8x the baseline relay", ">= 0.8x",
           "stream_library", ratio(0.8, at_least=True)),
    Target(12, "stream", "hub alone (raw clients) >= 0.9x the baseline relay", ">= 0.9x",
           "stream_raw_via_hub", ratio(0.9, at_least=True)),
    Target(12, "scale", "memory: <= 2 KiB added per idle subscriber, 1,000 subscribers",
           "<= 2 KiB", "rss_per_subscriber", at_most(2.0)),
    Target(12, "scale", "memory: <= 2 KiB added per idle subscriber, 10,000 subscribers",
           "<= 2 KiB", "rss_per_subscriber_10000", at_most(2.0)),
    Target(12, "scale", "memory: hub at rest <= the baseline relay + 4 MiB", "<= relay + 4 MiB",
           "rss_idle", excess_at_most(4.0)),
    Target(12, "startup", "start-up: listen --count 1 (a queued message) <= 3x python -c pass",
           "<= 3x", "sockcli_listen", ratio(3.0, at_least=False)),
    Target(12, "startup", "start-up: get <= 3x python -c pass", "<= 3x", "sockcli_get",
           ratio(3.0, at_least=False)),
    Target(12, "startup", "start-up: send <= 3x python -c pass", "<= 3x", "sockcli_send",
           ratio(3.0, at_least=False)),
    Target(12, "startup", "start-up: send, first run (no settings file, no SOCKCLI_* "
           "variables, empty cache) <= 5x python -c pass", "<= 5x", "sockcli_send_cold",
           ratio(5.0, at_least=False)),
    Target(12, "fanout", "fan-out to 100 subscribers >= 3x mosquitto", ">= 3x mosquitto",
           "fanout_sockcli", ratio(3.0, at_least=True, reference="fanout_mosquitto")),
    Target(12, "fanout", "latency p99 at 1,000 msg/s <= 1 ms", "<= 1 ms",
           "latency_sockcli_p99", at_most(1000.0)),
    Target(10, "startup", "start-up: get --format waybar --text TEMPLATE <= 3x python -c pass",
           "<= 3x", "sockcli_get_waybar", ratio(3.0, at_least=False)),
    Target(11, "fifo", "a bash loop into the hub's FIFO >= 0.5x a bare FIFO", ">= 0.5x",
           "fifo_hub", ratio(0.5, at_least=True)),
)


def judge(rows: Sequence[Row], suites: Iterable[str],
          targets: Sequence[Target] = TARGETS) -> list[Verdict]:
    """Every target's verdict on ``rows`` (the suites that ran: ``suites``); fills the
    target and verdict columns of the rows judged."""
    by_key = {r.key: r for r in rows}
    ran = set(suites)
    verdicts: list[Verdict] = []
    for t in targets:
        row = by_key.get(t.key)
        if t.suite not in ran:
            verdicts.append(Verdict(t.issue, t.text, NOT_RUN, f"suite {t.suite} not run", t.key))
            continue
        try:
            if row is None:
                raise Unmeasured(f"no figure (the {t.suite} suite failed?)")
            holds, figures = t.judge(row, by_key)
            verdict = HOLDS if holds else MISSES
        except Unmeasured as exc:
            # One line: a failure's text may carry a log (the tables' notes have it whole).
            verdict, figures = NOT_MEASURED, " ".join(str(exc).split())[:400]
        if row is not None:
            row.target, row.verdict = t.short, verdict
        verdicts.append(Verdict(t.issue, t.text, verdict, figures, t.key))
    return verdicts


def render(verdicts: Sequence[Verdict], mode: str, reps: int, markdown: bool = False) -> str:
    """The block: one line per target, its verdict first, then what was measured."""
    if mode == "quick":
        head = ("Targets (QUICK run: small counts, one repetition: indicative only, the "
                "verdicts are a full run's)")
    else:
        head = f"Targets (full run: medians of {reps} repetitions, ratios within this run)"
    counts = {v: sum(1 for x in verdicts if x.verdict == v)
              for v in (HOLDS, MISSES, NOT_MEASURED, NOT_RUN)}
    tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    if markdown:
        lines = [f"**{head}**: {tally}", "", "| issue | target | verdict | measured |",
                 "| --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in
                                    (v.issue, v.text, v.verdict, v.figures)) + " |"
                  for v in verdicts]
        return "\n".join(lines) + "\n"
    width = max(len(v.verdict) for v in verdicts) if verdicts else 0
    lines = [f"{head}: {tally}"]
    for v in verdicts:
        lines.append(f"  {v.verdict:{width}}  #{v.issue} {v.text}")
        lines.append(f"  {'':{width}}      {v.figures}")
    return "\n".join(lines) + "\n"


def as_json(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [asdict(v) for v in verdicts]
