package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// docCommands are the commands about larder itself: help, version,
// completion scripts and the man page.
func docCommands() []*cli.Command {
	return []*cli.Command{helpCommand(), versionCommand(), completionCommand(), manCommand(), completeCommand()}
}

func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Usage:     "list the commands, or show one command's help",
		ArgsUsage: "[COMMAND [SUBCOMMAND]]",
		Action:    runHelp,
	}
}

// runHelp shows the help of the command named by the arguments ("help
// key revoke"), or the list of commands.
func runHelp(c *cli.Context) error {
	if !c.Args().Present() {
		return cli.ShowAppHelp(c)
	}
	return showHelp(c.Lineage()[1], c.Args().Slice())
}

// showHelp shows the help of the command at path, as "larder PATH --help"
// does: the top command runs with --help under root, the context of
// larder itself (urfave/cli prepares a command, its name and subcommands,
// only when it runs).
func showHelp(root *cli.Context, path []string) error {
	cmds := root.App.Commands
	for i, name := range path {
		next := findCommand(cmds, name)
		if next == nil || next.Hidden {
			return unknownCommand(path[:i], name, cmds)
		}
		cmds = next.Subcommands
	}
	top := findCommand(root.App.Commands, path[0])
	ctx := cli.NewContext(root.App, nil, root)
	ctx.Command = top
	return top.Run(ctx, append(path[:len(path):len(path)], "--help")...)
}

// runNoCommand is the action of larder itself: the list of commands, or
// an unknown command with a suggestion.
func runNoCommand(c *cli.Context) error {
	if !c.Args().Present() {
		return cli.ShowAppHelp(c)
	}
	return unknownCommand(nil, c.Args().First(), c.App.Commands)
}

// runNoSubcommand is the action of a command made of subcommands ("key"):
// their list, the help of one ("key help revoke"), or an unknown one with
// a suggestion.
func runNoSubcommand(c *cli.Context) error {
	switch {
	case !c.Args().Present():
		return cli.ShowSubcommandHelp(c)
	case c.Args().First() == "help":
		return showHelp(c.Lineage()[1], append([]string{c.Command.Name}, c.Args().Tail()...))
	}
	return unknownCommand([]string{c.Command.Name}, c.Args().First(), c.Command.Subcommands)
}

// setNoSubcommand gives every command made of subcommands (and none of
// its own action) runNoSubcommand, in place of urfave/cli's help
// subcommand.
func setNoSubcommand(cmds []*cli.Command) {
	for _, c := range cmds {
		if len(c.Subcommands) > 0 && c.Action == nil {
			c.Action = runNoSubcommand
			c.HideHelpCommand = true
		}
		setNoSubcommand(c.Subcommands)
	}
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// unknownCommand is the usage error for a command name that is none of
// cmds (under the parent commands path), with the nearest names.
func unknownCommand(path []string, name string, cmds []*cli.Command) error {
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	full := strings.Join(append(path[:len(path):len(path)], name), " ")
	msg := fmt.Sprintf("unknown command %q (%s lists them)", full, strings.Join(append([]string{"larder", "help"}, path...), " "))
	if near := nearest(name, names); len(near) > 0 {
		for i, n := range near {
			near[i] = fmt.Sprintf("%q", strings.Join(append(path[:len(path):len(path)], n), " "))
		}
		msg = fmt.Sprintf("unknown command %q; did you mean %s?", full, orList(near))
	}
	return usagef("%s", msg)
}

// suggestFlag adds the nearest flag names to urfave/cli's "flag provided
// but not defined: -dryrun".
func suggestFlag(c *cli.Context, err error) error {
	const undefined = "flag provided but not defined: "
	s := err.Error()
	if !strings.HasPrefix(s, undefined) || c == nil || c.Command == nil {
		return err
	}
	name := strings.TrimLeft(strings.TrimPrefix(s, undefined), "-")
	var names []string
	flags := c.Command.Flags
	if c.Command.Name != c.App.Name {
		// Global flags may follow the command, too.
		flags = append(flags[:len(flags):len(flags)], c.App.Flags...)
	}
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	near := nearest(name, names)
	if len(near) == 0 {
		return err
	}
	for i, n := range near {
		near[i] = dashed(n)
	}
	return fmt.Errorf("%w; did you mean %s?", err, orList(near))
}

// dashed is a flag's name as typed: -r, --repo.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// nearest returns the candidates nearest to the typo s (in their order):
// those it starts, when that is one, else those at the smallest edit
// distance if that is small for its length (1 up to 4 characters, 2
// beyond), else none.
func nearest(s string, candidates []string) []string {
	s = strings.ToLower(s)
	var prefixed []string
	for _, c := range candidates {
		if len(s) >= 3 && strings.HasPrefix(c, s) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 1 {
		return prefixed
	}
	limit := 1
	if len(s) > 4 {
		limit = 2
	}
	var best []string
	bestD := limit + 1
	for _, c := range candidates {
		d := editDistance(s, c)
		switch {
		case d < bestD:
			best, bestD = []string{c}, d
		case d == bestD:
			best = append(best, c)
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// the insertions, deletions, substitutions and swaps of two neighbours
// that make one the other.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	// d[i][j]: the distance between x[:i] and y[:j].
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}
