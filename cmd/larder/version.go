package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/larder/larder/crypto"
	"github.com/larder/larder/recompress"
	"github.com/larder/larder/recompress/deflate"
	"github.com/larder/larder/repo"
	"github.com/urfave/cli/v2"
)

func init() {
	// --version prints what the version command prints. urfave/cli's
	// default adds -v, which a --verbose may want one day.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version (as larder version does)"}
	cli.VersionPrinter = func(c *cli.Context) {
		// The output writer keeps a failed write and run reports it.
		_ = printVersion(c)
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:   "version",
		Usage:  "print larder's version, its Go version and the format versions it reads and writes",
		Action: printVersion,
	}
}

// versionInfo is what larder version prints (one JSON object with --json).
type versionInfo struct {
	MessageType string `json:"message_type"` // "version"
	// Version is the module version from the build information: a
	// release tag, a pseudo-version of the commit built from (+dirty when
	// it had changes), or (devel).
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"` // the commit, when Version does not say it
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"` // GOOS/GOARCH
	// RepositoryFormats are the repository format versions read and
	// written (each in its own format); NewRepositoryFormat is that of
	// new repositories.
	RepositoryFormats   []int `json:"repository_formats"`
	NewRepositoryFormat int   `json:"new_repository_format"`
	RecipeFormat        int   `json:"recipe_format"`
	DeflateParamsFormat int   `json:"deflate_params_format"`
	KeyFileFormat       int   `json:"key_file_format"`
	JSONVersion         int   `json:"json_version"` // of this output (docs/JSON.md)
}

// jsonVersion is the version of the --json output, docs/JSON.md's.
const jsonVersion = 1

func currentVersion() versionInfo {
	v := versionInfo{
		MessageType:         "version",
		Version:             "(devel)",
		GoVersion:           runtime.Version(),
		Platform:            runtime.GOOS + "/" + runtime.GOARCH,
		NewRepositoryFormat: repo.FormatVersion,
		RecipeFormat:        recompress.RecipeVersion,
		DeflateParamsFormat: deflate.ParamsVersion,
		KeyFileFormat:       int(crypto.KeyFileVersion),
		JSONVersion:         jsonVersion,
	}
	for f := repo.MinFormatVersion; f <= repo.FormatVersion; f++ {
		v.RepositoryFormats = append(v.RepositoryFormats, f)
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v.Version = info.Main.Version
	}
	if v.Version == "(devel)" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				v.Revision = s.Value
			}
		}
	}
	return v
}

// moduleVersion is the module version from the build information.
func moduleVersion() string { return currentVersion().Version }

// printVersion prints the version, even with --quiet: it was asked for.
func printVersion(c *cli.Context) error {
	v := currentVersion()
	if c.Bool("json") {
		return emit(c, v)
	}
	rev := ""
	if v.Revision != "" {
		rev = " (revision " + v.Revision + ")"
	}
	formats := make([]string, len(v.RepositoryFormats))
	for i, f := range v.RepositoryFormats {
		formats[i] = fmt.Sprint(f)
	}
	_, err := fmt.Fprintf(c.App.Writer, "larder %s%s\n%s %s\nrepository formats %s, read and written (new repositories: %d)\nrecipe format %d, deflate parameter records %d, key files %d\n",
		v.Version, rev, v.GoVersion, v.Platform, andList(formats), v.NewRepositoryFormat,
		v.RecipeFormat, v.DeflateParamsFormat, v.KeyFileFormat)
	return err
}
