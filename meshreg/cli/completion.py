"""`meshreg completion bash|zsh|fish`: the shell's completion script (click's), and what completes: kubeconfig
contexts for --context, the config's registries for --registry, its writers for `policy revoke` and `verify --as`,
every identity `policy check --as` takes, and the ingress's mtls clients for `certs issue` and `certs revoke`.

Each completer reads files only (the kubeconfig, meshreg.yaml) and never fails: a file it cannot read completes
nothing. The shell runs `meshreg` with _MESHREG_COMPLETE set; click answers from the words typed so far, so a -c FILE
or --kubeconfig PATH typed before the word completes from that file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem, get_completion_class

if TYPE_CHECKING:
    from meshreg.config import Config

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_MESHREG_COMPLETE"
PROXIES = {"node-proxy": "a pull through the node proxy", "push-proxy": "a push through meshreg connect",
           "anonymous": "plain text: no identity", "external": "through the ingress without credentials"}

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL: commands, options, and values from your files (kubeconfig contexts
    for --context; from the config, registries for --registry, writers for `policy revoke` and `verify --as`,
    identities for `policy check --as`, mtls clients for `certs issue|revoke`).

    \b
    Load it in every new shell:
      bash  (~/.bashrc; needs bash 4.4+ and bash-completion):  source <(meshreg completion bash)
      zsh   (~/.zshrc, after compinit):                        source <(meshreg completion zsh)
      fish  (once):  meshreg completion fish > ~/.config/fish/completions/meshreg.fish

    \b
    Examples:
      meshreg completion bash > /etc/bash_completion.d/meshreg
      meshreg up --context <TAB>
      meshreg policy revoke <TAB>
    """
    from meshreg.cli import main

    script = get_completion_class(shell)
    assert script is not None  # click ships all three
    click.echo(script(main, {}, "meshreg", COMPLETE_VAR).source())


def _items(values: Iterable[tuple[str, str]], incomplete: str) -> list[CompletionItem]:
    """(value, help) pairs that start with what is typed, each once, in order. No comma in a help: click's fish
    script splits each answer at commas."""
    seen = dict(values)
    return [CompletionItem(value, help=help.replace(",", ";") or None) for value, help in seen.items()
            if value.startswith(incomplete)]


def _kubeconfig_files(ctx: click.Context) -> list[str]:
    """--kubeconfig, else $KUBECONFIG, else ~/.kube/config: each entry of a path list."""
    value = ctx.params.get("kubeconfig") or os.environ.get("KUBECONFIG")
    if value:
        return [p for p in str(value).split(os.pathsep) if p]
    return [os.path.expanduser("~/.kube/config")]


def contexts(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The contexts of the kubeconfig files, each with its cluster."""
    import yaml

    found: list[tuple[str, str]] = []
    for path in _kubeconfig_files(ctx):
        try:
            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        entries = data.get("contexts") if isinstance(data, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                found.append((entry["name"], str((entry.get("context") or {}).get("cluster") or "")))
    return _items(found, incomplete)


def _config(ctx: click.Context) -> Config | None:
    """The config the command would read (-c typed so far, $MESHREG_CONFIG, or the one found), None if unreadable."""
    from meshreg import config
    from meshreg.errors import MeshregError

    try:
        return config.load(ctx.params.get("config_path"))
    except (MeshregError, OSError, ValueError):
        return None


def _from_config(values: Callable[[Config, click.Context], Iterable[tuple[str, str]]]) -> Completer:
    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        cfg = _config(ctx)
        return [] if cfg is None else _items(values(cfg, ctx), incomplete)

    return complete


def _registries(cfg: Config, ctx: click.Context) -> Iterable[tuple[str, str]]:
    return [(r.name, f"{r.role}{' (default)' if r.default else ''}") for r in cfg.registries]


def _writers(cfg: Config, ctx: click.Context) -> Iterable[tuple[str, str]]:
    """The writers of --registry (when typed before), else of every registry."""
    chosen = ctx.params.get("registry")
    return [(w.service_account, f"{reg.name}: {' '.join(w.repositories)}") for reg in cfg.registries
            if chosen in (None, reg.name) for w in reg.writers]


def _identities(cfg: Config, ctx: click.Context) -> Iterable[tuple[str, str]]:
    """What `policy check --as` takes: writers, readers named NS/SA, the proxies, and the ingress's clients."""
    readers = [(r, "reader") for reg in cfg.registries for r in reg.readers if "*" not in r]
    clients = [(f"client:{c.name}", f"ingress client ({c.method})") for c in cfg.ingress.clients] \
        if cfg.ingress else []
    return [*_writers(cfg, ctx), *readers, *PROXIES.items(), *clients]


def _mtls_clients(cfg: Config, ctx: click.Context) -> Iterable[tuple[str, str]]:
    clients = cfg.ingress.clients if cfg.ingress else ()
    return [(c.name, " ".join(c.repositories)) for c in clients if c.method == "mtls"]


registries = _from_config(_registries)
writers = _from_config(_writers)
identities = _from_config(_identities)
mtls_clients = _from_config(_mtls_clients)

