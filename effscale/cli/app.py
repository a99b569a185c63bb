"""The Typer app and its error handling; command modules register on ``app``."""

from typing import Annotated

import typer
from rich.markup import escape

import effscale
from effscale import output
from effscale.errors import EffscaleError, Interrupted, as_flags

try:  # typer >= 0.17 carries its own copy of click
    from typer._click.exceptions import NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import NoArgsIsHelpError, UsageError


def _usage_error(e: UsageError) -> typer.Exit:
    """A usage error as one line on stderr, with the help to read; exit code 2."""
    sub = f" {e.ctx.info_name}" if e.ctx and e.ctx.parent else ""
    output.err_console.print(
        f"[bold red]error:[/] {escape(e.format_message())} (see `effscale{sub} --help`)",
        highlight=False,
        soft_wrap=True,
    )
    return typer.Exit(2)


def _say(label: str, text: str) -> None:
    output.err_console.print(f"{label} {escape(text)}", highlight=False, soft_wrap=True)


class _Group(typer.core.TyperGroup):
    """Known errors become one line on stderr and exit code 2 (1 for work that failed),
    never a traceback, in a command (invoke) and in the top-level options (make_context,
    e.g. ``effscale --bogus``); Ctrl-C says what finished and exits 130."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except UsageError as e:
            raise _usage_error(e) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EffscaleError as e:
            _say("[bold red]error:[/]", as_flags(str(e)))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt as e:
            text = as_flags(str(e)) if isinstance(e, Interrupted) else "stopped before finishing"
            _say("[bold yellow]interrupted:[/]", text)
            raise typer.Exit(130) from None
        except OSError as e:  # the file system said no where no check foresaw it
            where = f": {e.filename}" if e.filename else ""
            _say("[bold red]error:[/]", f"{e.strerror or e}{where}")
            raise typer.Exit(2) from None
        except NoArgsIsHelpError:
            raise
        except UsageError as e:
            raise _usage_error(e) from None


app = typer.Typer(
    cls=_Group,
    help="Model-scaling studies in PyTorch: scale a backbone by depth, width, resolution or "
    "the EfficientNet compound coefficient, count its cost, train it briefly, and report.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        output.console.print(f"effscale {effscale.__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    from effscale.display import show_data_progress

    show_data_progress()  # a command shows long data work; the library alone stays silent
