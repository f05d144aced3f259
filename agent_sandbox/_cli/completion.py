"""``agent-sandbox completion bash|zsh|fish``: shell completion rendered from ``docmodel``."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from agent_sandbox._cli.docmodel import SHELLS, Option, Subcommand, options, subcommands
from agent_sandbox._cli.parser import _Parser


def completion_main(argv: Sequence[str]) -> int:
    """``agent-sandbox completion bash|zsh|fish``: print that shell's completion script."""
    p = _Parser(prog="agent-sandbox completion", allow_abbrev=False,
                description="Print the completion script for SHELL.")
    p.add_argument("shell", choices=SHELLS)
    print(completion(p.parse_args(argv).shell), end="")
    return 0


def completion(shell: str) -> str:
    render: dict[str, Callable[[tuple[Option, ...], tuple[Subcommand, ...]], str]] = {
        "bash": _bash, "zsh": _zsh, "fish": _fish}
    return render[shell](options(), subcommands())


def _valued(opts: Sequence[Option]) -> list[str]:
    return [flag for o in opts if o.metavar for flag in o.flags]


def _all_flags(opts: Sequence[Option]) -> str:
    return " ".join(flag for o in opts for flag in o.flags)


def _takes_command(sub: Subcommand | None) -> bool:
    return sub is None or sub.operand in ("command", "path")


# --- bash ------------------------------------------------------------------------------------

_BASH_HEAD = """\
# bash completion for agent-sandbox, generated from its command-line definition.
# Load it with: source <(agent-sandbox completion bash)
# or install it: agent-sandbox completion bash \\
#                  > ~/.local/share/bash-completion/completions/agent-sandbox

_agent_sandbox_reply() {  # COMPREPLY: what compgen "$@" offers for $cur
    mapfile -t COMPREPLY < <(compgen "$@" -- "$cur")
}

_agent_sandbox_files() {  # $1: -f or -d
    compopt -o filenames 2>/dev/null
    _agent_sandbox_reply "$1"
}

_agent_sandbox_command() {  # the confined command starts at word $1
    if declare -F _command_offset >/dev/null; then
        _command_offset "$1"  # bash-completion: the command's own completion
    elif (( $1 == COMP_CWORD )); then
        _agent_sandbox_reply -c
    else
        _agent_sandbox_files -f
    fi
}
"""


def _bash_context(name: str, sub: Subcommand | None, opts: Sequence[Option],
                  names: Sequence[str]) -> str:
    """One function per subcommand: skip options and their values up to the word being
    completed, then offer an option's values, the options, or the operand."""
    operand = "command" if sub is None else sub.operand
    args = sub.args if sub else ()
    offered = [o for o in opts if o.values or o.complete]
    lines = [f"_agent_sandbox_{name}() {{  # words from $1 on"]
    if _valued(opts) or operand:
        lines += _bash_skip(_takes_command(sub), _valued(opts), operand == "command")
    if _takes_command(sub):
        lines.append('    if (( i < COMP_CWORD )); then _agent_sandbox_command "$i"; return; fi')
    if _valued(opts):  # free values (a size, a host...) have nothing to offer
        lines.append("    if (( i > COMP_CWORD )); then  # the value of the option in $prev")
        if offered:
            lines += ["        case $prev in",
                      *(f"            {'|'.join(o.flags)}) {_bash_value(o)} ;;" for o in offered),
                      "        esac"]
        lines += ["        return", "    fi"]
    if _takes_command(sub):
        lines.append('    if [[ -n $dashdash ]]; then _agent_sandbox_command "$i"; return; fi')
    if opts:
        lines.append("    if [[ $cur == -* ]]; then "
                     f"_agent_sandbox_reply -W '{_all_flags(opts)}'; return; fi")
    if sub is None:
        lines += ["    if (( COMP_CWORD == 1 )); then  # a subcommand or the command",
                  f"        _agent_sandbox_reply -W '{' '.join(names)}'",
                  '        local -a subcommands=("${COMPREPLY[@]}")',
                  "        _agent_sandbox_command 1",
                  '        COMPREPLY=("${subcommands[@]}" "${COMPREPLY[@]}")',
                  "        return", "    fi"]
    if operand == "command":
        lines.append('    _agent_sandbox_command "$i"')
    elif operand == "path":
        lines.append("    _agent_sandbox_files -f")
    elif args:
        lines.append(f"    (( COMP_CWORD == $1 )) && _agent_sandbox_reply -W '{' '.join(args)}'")
    if len(lines) == 1:
        lines.append("    :  # nothing to offer")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _bash_value(o: Option) -> str:
    if o.values:
        return f"_agent_sandbox_reply -W '{' '.join(o.values)}'"
    return f"_agent_sandbox_files -{o.complete[0]}"


def _bash_skip(dashdash: bool, valued: Sequence[str], command: bool) -> list[str]:
    """Advance i past the options, their values and (unless they start the command) the
    other words, to the word being completed; past it when that is an option's value."""
    lines = ["    local i=$1" + (" dashdash=" if dashdash else ""),
             "    while (( i < COMP_CWORD )); do",
             "        case ${COMP_WORDS[i]} in"]
    if dashdash:
        lines.append("            --) dashdash=1; (( i++ )); break ;;")
    if valued:
        lines += [f"            {'|'.join(valued)})",
                  "                [[ ${COMP_WORDS[i+1]} == = ]] && (( i++ ))",
                  "                (( i += 2 )) ;;"]
    if command:
        lines += ["            -*) (( i++ )) ;;", "            *) break ;;"]
    else:
        lines.append("            *) (( i++ )) ;;")
    return [*lines, "        esac", "    done"]


def _bash(opts: tuple[Option, ...], subs: tuple[Subcommand, ...]) -> str:
    names = [s.name for s in subs]
    contexts = [_bash_context("main", None, opts, names)]
    contexts += [_bash_context(_ident(s.name), s, s.options, names) for s in subs]
    cases = "\n".join(f"            {s.name}) context={_ident(s.name)} ;;" for s in subs)
    return _BASH_HEAD + "\n" + "\n".join(contexts) + f"""
_agent_sandbox() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}} context=main
    # bash splits --opt=value at '=' (COMP_WORDBREAKS): complete the value alone.
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]]; then
        prev=${{COMP_WORDS[COMP_CWORD-2]}}
    fi
    # A subcommand is only ever the first word; after it, its own words.
    if (( COMP_CWORD > 1 )); then
        case ${{COMP_WORDS[1]}} in
{cases}
        esac
    fi
    if [[ $context == main ]]; then _agent_sandbox_main 1; else "_agent_sandbox_$context" 2; fi
}}

complete -F _agent_sandbox agent-sandbox
"""


def _ident(name: str) -> str:
    return name.replace("-", "_")


# --- zsh -------------------------------------------------------------------------------------

def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_spec(o: Option) -> str:
    """One ``_arguments`` spec: exclusions, repetition, the flags, [help], :value:action."""
    described = "[" + re.sub(r"([\[\]\\])", r"\\\1", o.help) + "]"
    value = ""
    if o.metavar:
        action = (f"({' '.join(o.values)})" if o.values else
                  {"dir": "_directories", "file": "_files"}.get(o.complete, " "))
        value = ":" + o.metavar.replace(":", "\\:") + ":" + action
    ends = {"--help", "--version"} & set(o.flags)
    # _arguments offers an option once by itself; its other spellings must be excluded too.
    aliases = len(o.flags) > 1 and not o.repeatable
    exclusive = "(- *)" if ends else (f"({' '.join(o.flags)})" if aliases else "")
    prefix = "*" if o.repeatable else ""
    equals = "=" if o.metavar and all(f.startswith("--") for f in o.flags) else ""
    if len(o.flags) == 1:
        return _zsh_quote(exclusive + prefix + o.flags[0] + equals + described + value)
    flags = ",".join(f + equals for f in o.flags)
    return _zsh_quote(exclusive + prefix) + "{" + flags + "}" + _zsh_quote(described + value)


def _zsh_context(name: str, sub: Subcommand | None, opts: Sequence[Option]) -> str:
    specs = [_zsh_spec(o) for o in opts]
    operand = "command" if sub is None else sub.operand
    head = ""
    if operand == "command":
        specs += ["'(-)1:command:_agent-sandbox_command'", "'*::argument:_normal'"]
    elif operand == "path":
        specs.append("'*:path:_files'")
        # After --, the confined command and its own completion.
        head = ("  local dashdash=${words[(i)--]}\n"
                "  if (( dashdash < CURRENT )); then\n"
                "    shift $dashdash words; (( CURRENT -= dashdash )); _normal; return\n"
                "  fi\n")
    elif sub is not None and sub.args:
        specs.append(f"'1:{sub.usage}:({' '.join(sub.args)})'")
    elif sub is not None and sub.usage == "NAME":
        specs.append("'1:NAME: '")
    body = " \\\n    ".join(["_arguments -s -S :", *specs])
    return f"_agent-sandbox_{name}() {{\n{head}  {body}\n}}\n"


def _zsh(opts: tuple[Option, ...], subs: tuple[Subcommand, ...]) -> str:
    described = " ".join(_zsh_quote(f"{s.name}:{s.summary}") for s in subs)
    contexts = [_zsh_context("main", None, opts)]
    contexts += [_zsh_context(_ident(s.name), s, s.options) for s in subs]
    return f"""#compdef agent-sandbox
# zsh completion for agent-sandbox, generated from its command-line definition.
# Install it as _agent-sandbox in a directory of $fpath, before compinit:
#   agent-sandbox completion zsh > ~/.zfunc/_agent-sandbox   # with fpath=(~/.zfunc $fpath)

_agent-sandbox_command() {{  # the confined command's name; as the first word, a subcommand
  if [[ -z $subcommand ]] && (( CURRENT == 2 )); then
    local -a subcommands=({described})
    _describe -t subcommands subcommand subcommands
  fi
  _command_names -e
}}

{chr(10).join(contexts)}
_agent-sandbox() {{
  # A subcommand is only ever the first word; after it, its own words.
  local subcommand=
  if (( CURRENT > 2 )) && [[ $words[2] == ({'|'.join(s.name for s in subs)}) ]]; then
    subcommand=$words[2]
    words[2]=()
    (( CURRENT-- ))
  fi
  # After a -- that comes first, the confined command (_arguments -S misreads that one).
  if (( CURRENT > 2 )) && [[ $words[2] == -- && $subcommand != explain ]]; then
    shift 2 words
    (( CURRENT -= 2 ))
    _normal
    return
  fi
  _agent-sandbox_${{${{subcommand:-main}}//-/_}}
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _agent-sandbox "$@"
else
  compdef _agent-sandbox agent-sandbox
fi
"""


# --- fish ------------------------------------------------------------------------------------

def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_option(o: Option, condition: str) -> str:
    parts = ["complete -c agent-sandbox", "-n", _fish_quote(condition)]
    for flag in o.flags:
        parts += ["-l", flag[2:]] if flag.startswith("--") else ["-s", flag[1:]]
    if o.values:
        parts += ["-x", "-a", _fish_quote(" ".join(o.values))]
    elif o.complete == "dir":
        parts += ["-x", "-a", "'(__fish_complete_directories)'"]
    elif o.complete == "file":
        parts += ["-r", "-F"]
    elif o.metavar:
        parts.append("-x")
    parts += ["-d", _fish_quote(o.help)]
    return " ".join(parts)


def _fish_context(sub: Subcommand | None, opts: Sequence[Option]) -> list[str]:
    at = f"__agent_sandbox_in {sub.name if sub else 'main'}; and __agent_sandbox_at"
    lines = [_fish_option(o, f"{at} options") for o in opts]
    operand = "command" if sub is None else sub.operand
    if operand == "command":
        lines.append(f"complete -c agent-sandbox -n '{at} options command' -a "
                     "'(__fish_complete_command)'")
    elif operand == "path":
        lines += [f"complete -c agent-sandbox -n '{at} options' -F",
                  f"complete -c agent-sandbox -n '{at} command' -a '(__fish_complete_command)'"]
    elif sub is not None and sub.args:
        lines.append(f"complete -c agent-sandbox -n '{at} options' -a "
                     f"{_fish_quote(' '.join(sub.args))}")
    if _takes_command(sub):
        lines.append(f"complete -c agent-sandbox -n '{at} args' -a '(__agent_sandbox_args)'")
    return lines


def _fish_valued(subs: Sequence[Subcommand]) -> str:
    """The position function's per-subcommand settings: options with a value, and whether
    the first other word starts the confined command."""
    return "\n".join(f"        case {s.name}\n            set valued {' '.join(_valued(s.options))}"
                     + ("\n            set operand command" if s.operand == "command" else "")
                     for s in subs)


def _fish(opts: tuple[Option, ...], subs: tuple[Subcommand, ...]) -> str:
    lines = _fish_context(None, opts)
    lines += [f"complete -c agent-sandbox -n '__agent_sandbox_at first' -a {s.name} "
              f"-d {_fish_quote(s.summary)}" for s in subs]
    for s in subs:
        lines += _fish_context(s, s.options)
    return f"""# fish completion for agent-sandbox, generated from its command-line definition.
# Install it: agent-sandbox completion fish > ~/.config/fish/completions/agent-sandbox.fish

function __agent_sandbox_in --description 'Whether the words are those of subcommand $argv'
    set -l tokens (commandline -opc)
    if set -q tokens[2]; and contains -- $tokens[2] {' '.join(s.name for s in subs)}
        test $tokens[2] = $argv[1]
    else
        test main = $argv[1]
    end
end

# Where the word being completed is: first (the first word), options, command (the confined
# command's name, after --), or args and the index of the command's first word.
function __agent_sandbox_position
    set -l tokens (commandline -opc)
    if test (count $tokens) -eq 1
        echo first
        return
    end
    set -l i 3
    set -l operand
    set -l valued {' '.join(_valued(opts))}
    switch $tokens[2]
{_fish_valued(subs)}
        case '*'
            set i 2
            set operand command
    end
    while test $i -le (count $tokens)
        if test $tokens[$i] = --
            test $i -eq (count $tokens); and echo command; or printf '%s\\n' args (math $i + 1)
            return
        else if contains -- $tokens[$i] $valued
            set i (math $i + 2)
        else if string match -q -- '-*' $tokens[$i]; or test -z "$operand"
            set i (math $i + 1)
        else
            printf '%s\\n' args $i
            return
        end
    end
    echo options
end

function __agent_sandbox_at --description 'Whether the position is one of $argv'
    set -l position (__agent_sandbox_position)
    contains -- $position[1] $argv
    or test $position[1] = first -a "$argv[1]" = options
end

function __agent_sandbox_args --description "The confined command's own completion"
    set -l position (__agent_sandbox_position)
    set -l words (commandline -opc) (commandline -ct)
    set words $words[$position[2]..-1]
    complete -C (string join -- ' ' (string escape -- $words))
end

complete -c agent-sandbox -f
{chr(10).join(lines)}
"""
