package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// The shell completion scripts: each asks "larder __complete SHELL
// WORDS..." for the candidates of the last word, so that they always
// follow the commands and flags of the binary that answers. No candidates
// means a file name (or a flag's value) is wanted: the shell completes
// file names then.
const bashCompletion = `# bash completion for larder (larder completion bash)
_larder() {
    local IFS=$'\n'
    COMPREPLY=($("${COMP_WORDS[0]}" __complete bash "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -o bashdefault -F _larder larder
`

const zshCompletion = `#compdef larder
# zsh completion for larder (larder completion zsh)
_larder() {
  local -a candidates
  candidates=("${(@f)$("${words[1]}" __complete zsh "${(@)words[2,CURRENT]}" 2>/dev/null)}")
  if [[ -n "${candidates[1]}" ]]; then
    _describe -t larder 'larder' candidates
  else
    _files
  fi
}
if [[ "${funcstack[1]}" == "_larder" ]]; then
  _larder "$@"
else
  compdef _larder larder
fi
`

const fishCompletion = `# fish completion for larder (larder completion fish)
function __larder_complete
    set -l words (commandline -opc)
    set -l larder $words[1]
    set -e words[1]
    set -l candidates ($larder __complete fish $words (commandline -ct) 2>/dev/null)
    if test (count $candidates) -eq 0
        __fish_complete_path (commandline -ct)
    else
        printf '%s\n' $candidates
    end
end
complete -c larder -f -a '(__larder_complete)'
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish (make install installs them)",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash: larder completion bash > /usr/local/share/bash-completion/completions/larder\n" +
			"zsh: larder completion zsh > \"${fpath[1]}/_larder\"\n" +
			"fish: larder completion fish > ~/.config/fish/completions/larder.fish",
		Action: func(c *cli.Context) error {
			scripts := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}
			s, ok := scripts[c.Args().First()]
			if c.NArg() != 1 || !ok {
				return usagef("completion needs one shell: bash, zsh or fish")
			}
			_, err := fmt.Fprint(c.App.Writer, s)
			return err
		},
	}
}

// completeCommand answers the completion scripts: SHELL, then the words
// after "larder" up to the one being completed (perhaps empty).
func completeCommand() *cli.Command {
	return &cli.Command{
		Name:            "__complete",
		Hidden:          true,
		SkipFlagParsing: true,
		Usage:           "print the candidates for the last of the words (for the completion scripts)",
		ArgsUsage:       "bash|zsh|fish WORD...",
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) == 0 {
				return usagef("__complete needs a shell and the words")
			}
			if len(args) == 1 {
				args = append(args, "") // the first word, empty
			}
			for _, cand := range completions(c.App, args[1:]) {
				line := cand.word
				switch args[0] {
				case "zsh":
					line = strings.ReplaceAll(cand.word, ":", `\:`) + ":" + cand.usage
				case "fish":
					line = cand.word + "\t" + cand.usage
				}
				if _, err := fmt.Fprintln(c.App.Writer, line); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

type candidate struct{ word, usage string }

// completions are the candidates for the last of words (the ones after
// "larder"): commands where a command may come, flags for a word that
// starts with "-" (before or after the arguments, as interspersed takes
// them), none where an argument or a flag's value is wanted.
func completions(app *cli.App, words []string) []candidate {
	cur := words[len(words)-1]
	if cur == "=" {
		return nil // bash splits --repo=VALUE at "="
	}
	var cmd *cli.Command
	cmds := app.Commands
	args, dashdash := false, false // an argument came, "--" came
	for i := 0; i < len(words)-1; i++ {
		w := words[i]
		switch {
		case dashdash:
		case w == "--":
			dashdash = true
		case strings.HasPrefix(w, "-") && w != "-":
			f := findFlag(commandFlags(app, cmd), w)
			if f != nil && takesValue(f) && !strings.Contains(w, "=") {
				// Its value follows, after "=" in bash's words.
				if i+1 < len(words) && words[i+1] == "=" {
					i++
				}
				if i++; i >= len(words)-1 {
					return nil
				}
			}
		case !args && findCommand(cmds, w) != nil:
			cmd = findCommand(cmds, w)
			cmds = cmd.Subcommands
			if cmd.Name == "help" {
				cmds = app.Commands // help's arguments are commands
			}
		default:
			args = true
		}
	}
	var out []candidate
	switch {
	case dashdash:
	case strings.HasPrefix(cur, "-"):
		for _, f := range commandFlags(app, cmd) {
			if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
				continue
			}
			usage := ""
			if d, ok := f.(cli.DocGenerationFlag); ok {
				usage = d.GetUsage()
			}
			for _, n := range f.Names() {
				if w := dashed(n); strings.HasPrefix(w, cur) {
					out = append(out, candidate{w, usage})
				}
			}
		}
	case !args:
		for _, c := range cmds {
			if !c.Hidden && strings.HasPrefix(c.Name, cur) {
				out = append(out, candidate{c.Name, c.Usage})
			}
		}
	}
	return out
}

// commandFlags are the flags that may follow cmd (nil: larder itself):
// its own and the global ones (with --help and --version once the app is
// set up, as it is when a command runs).
func commandFlags(app *cli.App, cmd *cli.Command) []cli.Flag {
	var flags []cli.Flag
	if cmd != nil {
		flags = append(flags, cmd.Flags...)
	}
	for _, f := range app.Flags {
		if f == cli.VersionFlag && cmd != nil {
			continue // larder's own
		}
		if findFlag(flags, dashed(f.Names()[0])) == nil {
			flags = append(flags, f)
		}
	}
	return flags
}
