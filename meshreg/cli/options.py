"""Options and steps shared by several commands, each defined once.

Nothing here imports the cluster part at import time: `meshreg render` loads this module too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from meshreg.cli.output.document import FORMATS, dump

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from meshreg.cluster.api import ClusterClient, Object
    from meshreg.config import Config

F = TypeVar("F", bound=Callable[..., object])
Completer = Callable[[click.Context, click.Parameter, str], list["CompletionItem"]]


def completer(name: str) -> Completer:
    """meshreg.cli.completion's completer `name`, imported when a shell asks (click's completion machinery loads
    with it, never for a command that runs)."""
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        from meshreg.cli import completion

        found: list[CompletionItem] = getattr(completion, name)(ctx, param, incomplete)
        return found
    return complete


def _discover(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """-c FILE (or $MESHREG_CONFIG) as given; else meshreg.yaml here or above, up to the Git work tree's root; None
    when there is none (load_config says so, once)."""
    if value:
        return value
    from meshreg.config import discovery

    search = discovery.find()
    ctx.meta[_IN_WORK_TREE] = search.in_work_tree
    return search.path


_IN_WORK_TREE = "meshreg.config.in_work_tree"
_DEFAULT_SAID = "meshreg.config.default_said"

config_option = click.option(
    "-c", "--config", "config_path", metavar="FILE", default=None, envvar="MESHREG_CONFIG", callback=_discover,
    type=click.Path(dir_okay=False),
    help="Config file [default: meshreg.yaml in this directory, or the nearest one above it up to the root of the "
         "Git work tree; else the built-in default].",
)


def load_config(path: str | None) -> Config:
    """The config at `path`; with None (no file anywhere the search looked), the built-in default, said once on
    stderr: a command never silently deploys a config nobody wrote."""
    from meshreg import config

    if path is None:
        ctx = click.get_current_context(silent=True)
        meta = ctx.find_root().meta if ctx else {}
        if not meta.get(_DEFAULT_SAID):
            meta[_DEFAULT_SAID] = True
            where = "here or above (up to the repository root)" if meta.get(_IN_WORK_TREE) else "here"
            say(f"no meshreg.yaml {where}; using the built-in default (writers: none)")
    return config.load(path)


registry_option = click.option(
    "--registry", "registry", metavar="NAME", default=None, shell_complete=completer("registries"),
    help="Which registry, with spec.registries [default: the default registry].")


def output_option(func: F) -> F:
    """-o/--output text|json|yaml: the report for people, or as a versioned document for scripts."""
    return click.option("-o", "--output", type=click.Choice(FORMATS), default="text", show_default=True,
                        help="Output format: text for people; json or yaml, a versioned document for scripts "
                             "(docs/output.md).")(func)


def echo_report(output: str, *, text: Callable[[], str], data: Callable[[], Mapping[str, Any]]) -> None:
    """The report on stdout: `text()` for -o text, else the document `data()` in the format asked for."""
    click.echo(text() if output == "text" else dump(data(), output))


class Duration(click.ParamType):
    """A time as kubectl and helm take it: a Go duration (90s, 5m, 1h30m) or a bare number of seconds; in seconds."""

    name = "duration"

    def __init__(self, *, minimum: float) -> None:
        self.minimum = minimum

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            seconds = self._parse(str(value).strip(), param, ctx)
        if not seconds >= self.minimum:
            self.fail(f"{value!r} is shorter than the minimum, {_seconds(self.minimum)}", param, ctx)
        return seconds

    def _parse(self, text: str, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import durationpy

        try:
            seconds = float(text)  # a bare number is seconds, as before
        except ValueError:
            try:
                seconds = durationpy.from_str(text).total_seconds()
            except (durationpy.DurationError, ValueError, OverflowError):
                seconds = math.nan
        if not math.isfinite(seconds):
            self.fail(f"{text!r} is not a duration (e.g. 90s, 5m, 1h30m; a bare number is seconds)", param, ctx)
        return seconds


def _seconds(value: float) -> str:
    """A minimum as the user would type it: 10s, 1m30s."""
    minutes, seconds = divmod(int(value), 60)
    return (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds or not minutes else "")


def timeout_option(*, default: str, minimum: float, what: str) -> Callable[[F], F]:
    """--timeout DURATION: how long `what` may take."""
    return click.option("--timeout", type=Duration(minimum=minimum), default=default, show_default=True,
                        help=f"How long to wait for {what}: 90s, 5m, 1h30m, or seconds.")


def cluster_options(func: F) -> F:
    """--kubeconfig and --context, as kubectl spells them."""
    func = click.option("--context", metavar="NAME", default=None, shell_complete=completer("contexts"),
                        help="Kubeconfig context to use [default: the current context].")(func)
    # $KUBECONFIG is read by meshreg.cluster.connect, not here: an explicit --kubeconfig must exist, while entries
    # of a $KUBECONFIG list that do not exist are skipped, as kubectl does.
    func = click.option("--kubeconfig", metavar="PATH", default=None, type=click.Path(),
                        help="Kubeconfig file(s) [default: $KUBECONFIG, then ~/.kube/config, then in-cluster].")(func)
    return func


def moved_option(*decls: str, instead: str) -> Callable[[F], F]:
    """A hidden option this command once had (-o named a file or directory before it meant a format everywhere): a
    one-line usage error saying what to use `instead`."""
    def refuse(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None and not ctx.resilient_parsing:
            raise click.UsageError(f"{'/'.join(decls)} {value}: {ctx.command_path} takes {instead}", ctx)

    return click.option(*decls, "moved", metavar="X", default=None, hidden=True, expose_value=False,
                        callback=refuse)


def say(line: str) -> None:
    """A line from meshreg itself (a note, a warning, progress) on stderr, so stdout stays the command's output."""
    click.echo(f"meshreg: {line}", err=True)


def prepare(config_path: str | None, kubeconfig: str | None,
            context: str | None) -> tuple[Config, list[Object], ClusterClient]:
    """Config, render and connection, in that order: bad input fails before any request."""
    from meshreg import render as rendering
    from meshreg.cluster import client as clusters

    cfg = load_config(config_path)
    objects = rendering.render(cfg)
    cluster = clusters.connect(kubeconfig=kubeconfig, context=context)  # looked up now, so tests can swap it
    return cfg, objects, cluster


def only_with_apply(*, apply: bool, context: str | None) -> None:
    """For commands that edit files and apply with --apply: checked before they change anything."""
    if context and not apply:
        raise click.UsageError("--context only makes sense with --apply")


def apply_only(manifests: list[Object], *, kubeconfig: str | None, context: str | None) -> None:
    """Server-side apply just these manifests (what a command has just changed), one line per object."""
    from meshreg.cluster import client as clusters
    from meshreg.operations.publish import publish

    cluster = clusters.connect(kubeconfig=kubeconfig, context=context)
    for outcome in publish(manifests, cluster):
        click.echo(f"  {outcome.action}: {outcome}")


def interruptible() -> None:
    """Ctrl-C (SIGINT) stops the command even when a shell started it with SIGINT ignored (as a background job):
    long-running commands that clean up after themselves call this first."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
