"""gatewayctl completion bash|zsh|fish: a shell completion script, generated from the parser itself.

The script holds, per command path (``""``, ``keys``, ``keys create`` …), the
words that may follow (subcommands and options) and, per option that takes
a value, its choices (or nothing: then files are offered). It is drawn from
the same argparse tree ``gatewayctl`` parses with, so a new command or option
completes as soon as it exists. Each shell gets the same two lookup
functions and a small driver that walks the words typed so far.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

SHELLS = ("bash", "zsh", "fish")


@dataclass
class Node:
    """One command path: the words that may follow it, and the options that take a value (-> choices)."""

    words: list[str] = field(default_factory=list)
    values: dict[str, list[str]] = field(default_factory=dict)


def tree(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, Node]]:
    """Every command path of ``parser`` and what may follow it, parents first."""
    node = Node()
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            children += [(name, child) for name, child in action.choices.items()]
        elif not action.option_strings and action.choices:  # a positional with choices: they may follow
            node.words += [str(choice) for choice in action.choices]
        elif action.option_strings and action.help is not argparse.SUPPRESS:
            names = action.option_strings
            node.words += [name for name in names if name.startswith("--") or len(names) == 1]
            if action.nargs != 0:
                choices = [str(choice) for choice in action.choices or ()]
                node.values.update({name: choices for name in action.option_strings})
    node.words = [name for name, _ in children] + node.words
    yield path, node
    for name, child in children:
        yield from tree(child, f"{path} {name}".strip())


def _quoted(words: list[str]) -> str:
    return "'" + " ".join(words) + "'"


def _lookups(nodes: list[tuple[str, Node]]) -> str:
    """The two POSIX-shell functions bash and zsh share: words after a path; an option's value choices."""
    words = "\n".join(f"        {_quoted([path])}) echo {_quoted(node.words)} ;;" for path, node in nodes)
    values = "\n".join(
        f"        {_quoted([f'{path}|{option}'])}) echo {_quoted(choices)} ;;"
        for path, node in nodes
        for option, choices in node.values.items()
    )
    return f"""_gatewayctl_words() {{  # what may follow the command path $1
    case "$1" in
{words}
    esac
}}

_gatewayctl_values() {{  # the choices of option $2 after path $1 (empty: a file or free text); 1: takes no value
    case "$1|$2" in
{values}
        *) return 1 ;;
    esac
}}
"""


_BASH = """# bash completion for gatewayctl, generated from its parser by 'gatewayctl completion bash'.
# Install: gatewayctl completion bash > ~/.local/share/bash-completion/completions/gatewayctl
{lookups}
_gatewayctl() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} cmd='' word choices i
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${{COMP_WORDS[i]}}
        [[ $word == -* ]] && continue
        [[ " $(_gatewayctl_words "$cmd") " == *" $word "* ]] && cmd=${{cmd:+$cmd }}$word
    done
    if [[ $prev == -* ]] && choices=$(_gatewayctl_values "$cmd" "$prev"); then
        if [[ -n $choices ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$choices" -- "$cur")
        else
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        fi
        return 0
    fi
    mapfile -t COMPREPLY < <(compgen -W "$(_gatewayctl_words "$cmd")" -- "$cur")
}}

complete -F _gatewayctl gatewayctl
"""

_ZSH = """#compdef gatewayctl
# zsh completion for gatewayctl, generated from its parser by 'gatewayctl completion zsh'.
# Install: gatewayctl completion zsh > ~/.gatewayctl-completion.zsh, and in ~/.zshrc after compinit:
#   source ~/.gatewayctl-completion.zsh
# (or save it as _gatewayctl in a directory of $fpath)
{lookups}
_gatewayctl() {{
    local cmd='' word choices i
    local -a following
    for ((i = 2; i < CURRENT; i++)); do
        word=${{words[i]}}
        [[ $word == -* ]] && continue
        following=(${{=$(_gatewayctl_words "$cmd")}})
        (( ${{following[(Ie)$word]}} )) && cmd=${{cmd:+$cmd }}$word
    done
    if [[ ${{words[CURRENT-1]}} == -* ]] && choices=$(_gatewayctl_values "$cmd" "${{words[CURRENT-1]}}"); then
        if [[ -n $choices ]]; then
            compadd -- ${{=choices}}
        else
            _files
        fi
        return 0
    fi
    compadd -- ${{=$(_gatewayctl_words "$cmd")}}
}}

if [[ ${{funcstack[1]}} == _gatewayctl ]]; then  # autoloaded from a file _gatewayctl in $fpath
    _gatewayctl "$@"
elif (( $+functions[compdef] )); then  # sourced
    compdef _gatewayctl gatewayctl
fi
"""

_FISH = """# fish completion for gatewayctl, generated from its parser by 'gatewayctl completion fish'.
# Install: gatewayctl completion fish > ~/.config/fish/completions/gatewayctl.fish
function __gatewayctl_words --description 'what may follow the command path $argv[1]'
    switch "$argv[1]"
{words}
    end
end

function __gatewayctl_values --description 'the choices of option $argv[2] after path $argv[1]'
    switch "$argv[1]|$argv[2]"
{values}
        case '*'
            return 1
    end
end

function __gatewayctl_path --description 'the command path typed so far'
    set -l path ''
    for word in (commandline -opc)[2..-1]
        string match -q -- '-*' $word; and continue
        if contains -- $word (string split ' ' -- (__gatewayctl_words "$path"))
            set path (string trim -- "$path $word")
        end
    end
    echo $path
end

function __gatewayctl_wants_value --description 'the previous word is an option that takes a value'
    set -l previous (commandline -opc)[-1]
    string match -q -- '-*' $previous; and __gatewayctl_values (__gatewayctl_path) $previous >/dev/null
end

function __gatewayctl_value_choices
    __gatewayctl_values (__gatewayctl_path) (commandline -opc)[-1] | string split ' ' | string match -v ''
end

function __gatewayctl_following
    string split ' ' -- (__gatewayctl_words (__gatewayctl_path))
end

complete -c gatewayctl -f -n 'not __gatewayctl_wants_value' -a '(__gatewayctl_following)'
complete -c gatewayctl -f -n '__gatewayctl_wants_value' -a '(__gatewayctl_value_choices)'
complete -c gatewayctl -F -n '__gatewayctl_wants_value; and test -z "$(__gatewayctl_value_choices)"'
"""


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    nodes = list(tree(parser))
    if shell == "fish":
        words = "\n".join(
            f"        case {_quoted([path])}\n            echo {_quoted(node.words)}" for path, node in nodes
        )
        values = "\n".join(
            f"        case {_quoted([f'{path}|{option}'])}\n            echo {_quoted(choices)}"
            for path, node in nodes
            for option, choices in node.values.items()
        )
        return _FISH.format(words=words, values=values)
    return (_BASH if shell == "bash" else _ZSH).format(lookups=_lookups(nodes))


def run_completion(args: argparse.Namespace) -> int:
    from gateway.cli.main import build_parser  # the whole tree, this command included

    sys.stdout.write(script(args.shell, build_parser()))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    completion = sub.add_parser(
        "completion", help="print a shell completion script (bash, zsh or fish)",
        description="Prints a completion script for commands, options and option choices, generated from "
        "gatewayctl's own parser. bash: gatewayctl completion bash > "
        "~/.local/share/bash-completion/completions/gatewayctl (or source it from ~/.bashrc). zsh: save it and "
        "source it from ~/.zshrc after compinit. fish: gatewayctl completion fish > "
        "~/.config/fish/completions/gatewayctl.fish. Open a new shell afterwards.",
    )  # fmt: skip
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    completion.set_defaults(func=run_completion, sync=True)
