package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// failingWriter fails every write, like a full disk or a closed pipe.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestOutputErrorFails checks that a command whose output cannot be
// written fails, saying why, instead of exiting 0.
func TestOutputErrorFails(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"larder", "--help"}, strings.NewReader(""), failingWriter{}, &stderr)
	if code != exitFailure {
		t.Errorf("exit code %d, want %d", code, exitFailure)
	}
	if want := "larder: writing the output: no space left on device\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	stderr.Reset()
	var stdout bytes.Buffer
	if code := run([]string{"larder", "--help"}, strings.NewReader(""), &stdout, &stderr); code != exitOK || stdout.Len() == 0 || stderr.Len() != 0 {
		t.Errorf("with a working stdout: exit code %d, %d bytes out, stderr %q", code, stdout.Len(), stderr.String())
	}
}
