"""The output options of the commands that print messages (``get``, and ``listen``, which adds
--idle and says --format and --json in its own words: :mod:`sockcli.cli.listencore`), declared
once as entries of the option tables, and the rules of their combination.

Entries of :mod:`sockcli.cli.sendopts` tables, so that the click-free parsers of ``sockcli get``
and ``sockcli listen`` (:mod:`sockcli.cli.getcore`, :mod:`sockcli.cli.listencore`) and click
read the same declarations. This module is on their fast paths: it imports the printers
(:mod:`sockcli.cli.render`, light) but never click.
"""

from __future__ import annotations

from sockcli.cli.render import FORMATS, BarPrinter, Fields, MessagePrinter
from sockcli.cli.sendopts import CHOICE, FLAG, TEMPLATE, Option

TYPE_CHECKING = False  # on get's path: no typing import
if TYPE_CHECKING:
    from sockcli.cli.templates import Template

__all__ = ["ALT_OPTION", "CLASS_OPTION", "FORMAT_OPTIONS", "TEMPLATE_OPTION", "TEXT_OPTION",
           "TOOLTIP_OPTION", "fields_of", "format_problem", "make_printer"]

FORMAT_OPTION = Option(
    "--format", dest="fmt", kind=CHOICE, choices=FORMATS,
    help="Output format: json (the default, and with --json), text, polybar (one plain line "
         "each), waybar (its custom module's JSON), i3bar (one i3bar block).")
JSON_OPTION = Option("--json", dest="as_json", kind=FLAG, default=False,
                     help="Machine-readable output: --format json.")
TEXT_OPTION = Option(
    "--text", dest="text_t", kind=TEMPLATE, metavar="TEMPLATE",
    help="The text of text, polybar, waybar and i3bar output: {data.text} paths, "
         "{path:spec}, {path|fallback}, {{ and }} for braces.")
TOOLTIP_OPTION = Option("--tooltip", dest="tooltip_t", kind=TEMPLATE, metavar="TEMPLATE",
                        help="waybar: the tooltip.")
CLASS_OPTION = Option("--class", dest="class_t", kind=TEMPLATE, metavar="TEMPLATE",
                      help="waybar: the CSS class.")
ALT_OPTION = Option("--alt", dest="alt_t", kind=TEMPLATE, metavar="TEMPLATE",
                    help="waybar: the alt field.")
TEMPLATE_OPTION = Option("--template", dest="template_t", kind=TEMPLATE, metavar="TEMPLATE",
                         help="One line per message from TEMPLATE alone, in any format.")

#: --format, --json and the templates, in the order help shows them.
FORMAT_OPTIONS = (FORMAT_OPTION, JSON_OPTION, TEXT_OPTION, TOOLTIP_OPTION, CLASS_OPTION,
                  ALT_OPTION, TEMPLATE_OPTION)


def fields_of(text: Template | None = None, tooltip: Template | None = None,
              css_class: Template | None = None, alt: Template | None = None,
              template: Template | None = None, idle_text: Template | None = None) -> Fields:
    """The :class:`~sockcli.cli.render.Fields` of the template options."""
    return Fields(text=text, tooltip=tooltip, css_class=css_class, alt=alt, template=template,
                  idle_text=idle_text)


def format_problem(fmt: str | None, as_json: bool, fields: Fields,
                   idle: float | None = None) -> str | None:
    """Why these output options cannot go together (the usage error's text), or None: --json
    is --format json; the fields, and listen's --idle, need a format that has them, or
    --template; --idle-text needs --idle."""
    if as_json and fmt not in (None, "json"):
        return f"--json is --format json: it cannot go with --format {fmt}"
    if fields.idle_text is not None and idle is None:
        return "--idle-text is the output of --idle: give --idle SECONDS too"
    bar = fmt not in (None, "json") or fields.template is not None
    given = (("--text", fields.text), ("--tooltip", fields.tooltip),
             ("--class", fields.css_class), ("--alt", fields.alt))
    if not bar:
        for option, value in (*given, ("--idle", idle)):
            if value is not None:
                return f"{option} needs --format text, polybar, waybar or i3bar, or --template"
    elif fmt != "waybar" and fields.template is None:
        for option, value in given[1:]:
            if value is not None:
                return f"{option} is a field of --format waybar only"
    return None


def make_printer(fmt: str | None, as_json: bool, fields: Fields, *,
                 rich: bool = False) -> MessagePrinter | BarPrinter:
    """The printer of a valid combination (:func:`format_problem`): a bar format's or the
    template's, else JSON lines (or, with ``rich`` and no format asked for, the rich view)."""
    if fmt not in (None, "json") or fields.template is not None:
        return BarPrinter(fmt or "text", fields)
    return MessagePrinter(rich=rich and fmt is None and not as_json)
