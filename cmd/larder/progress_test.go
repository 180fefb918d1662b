package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// With --json, a meter writes status lines at most once a second however
// often it is told, and without a terminal or with --quiet it is silent.
func TestMeterJSONRate(t *testing.T) {
	var out, errOut bytes.Buffer
	app := &cli.App{Writer: &out, ErrWriter: &errOut}
	set := flag.NewFlagSet("t", flag.ContinueOnError)
	set.Bool("json", true, "")
	set.Bool("quiet", false, "")
	c := cli.NewContext(app, set, nil)
	c.Command = &cli.Command{Name: "restore"}
	m := newMeter(c)
	if m == nil {
		t.Fatal("no meter with --json")
	}
	for i := range 100000 {
		m.update("restore", int64(i), 100000)
	}
	m.done()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 1 || len(lines) > 2 {
		t.Fatalf("%d status lines for 100000 reports in well under a few seconds, want 1 or 2:\n%s", len(lines), out.String())
	}
	if !strings.HasPrefix(lines[0], `{"message_type":"status","action":"restore","phase":"restore","unit":"bytes",`) {
		t.Errorf("status line %s", lines[0])
	}
	if errOut.Len() > 0 {
		t.Errorf("--json drew on stderr: %q", errOut.String())
	}

	// No terminal (a buffer), no --json: no meter at all.
	set2 := flag.NewFlagSet("t", flag.ContinueOnError)
	set2.Bool("json", false, "")
	set2.Bool("quiet", false, "")
	if m := newMeter(cli.NewContext(app, set2, nil)); m != nil {
		t.Error("a meter without a terminal")
	}
	set3 := flag.NewFlagSet("t", flag.ContinueOnError)
	set3.Bool("json", true, "")
	set3.Bool("quiet", true, "")
	if m := newMeter(cli.NewContext(app, set3, nil)); m != nil {
		t.Error("a meter with --quiet")
	}
}
