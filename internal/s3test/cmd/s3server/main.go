// Command s3server starts and stops the S3 server larder's tests use
// (internal/s3test), for a person: scripts/s3-server.sh runs it.
//
//	s3server start DIR   start a fresh one with its data in DIR (emptied); print export lines
//	s3server stop DIR    stop the server started in DIR
package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/larder/larder/internal/s3test"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "start" && os.Args[1] != "stop") {
		fmt.Fprintln(os.Stderr, "usage: s3server start|stop DIR")
		os.Exit(2)
	}
	dir, err := filepath.Abs(os.Args[2])
	if err == nil {
		if os.Args[1] == "start" {
			err = start(dir)
		} else {
			err = stop(dir)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3server:", err)
		os.Exit(1)
	}
}

func start(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "server.pid")); err == nil {
		return fmt.Errorf("%s has a running server (stop it first)", dir)
	}
	// A fresh server each time: new credentials, an empty bucket.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	s, err := s3test.Start(dir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "server.pid"), []byte(strconv.Itoa(s.PID())), 0o600); err != nil {
		s.Stop()
		return err
	}
	lines := []string{
		"export LARDER_REPO=" + s.URL("repo"),
		"export AWS_ACCESS_KEY_ID=" + s.RootKey,
		"export AWS_SECRET_ACCESS_KEY=" + s.RootSecret,
		"export AWS_DEFAULT_REGION=us-east-1",
		"export WRITER_AWS_ACCESS_KEY_ID=" + s.WriterKey,
		"export WRITER_AWS_SECRET_ACCESS_KEY=" + s.WriterSecret,
	}
	env := strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "server.env"), []byte(env), 0o600); err != nil {
		return err
	}
	fmt.Print(env)
	return nil
}

func stop(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "server.pid"))
	if err != nil {
		return fmt.Errorf("no server was started in %s: %w", dir, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	// A signal fails only when the server is gone already, which the
	// checks with signal 0 find out too.
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	envErr := os.Remove(filepath.Join(dir, "server.env"))
	if errors.Is(envErr, fs.ErrNotExist) {
		envErr = nil // start failed before writing it
	}
	return errors.Join(envErr, os.Remove(filepath.Join(dir, "server.pid")))
}
