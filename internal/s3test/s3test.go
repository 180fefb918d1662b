// Package s3test runs a real S3 server for larder's tests: versitygw
// (github.com/versity/versitygw, built from the Go module proxy), on a
// loopback port, storing objects in a temporary folder, with two
// credentials: the master's (the server's root user) and a writer's, whose
// bucket policy allows s3:PutObject, s3:GetObject and s3:ListBucket and
// nothing else — no DeleteObject — as docs/STORAGE.md tells users to set up
// their forum server's credential.
//
// scripts/s3-server.sh starts the same server by hand (through
// cmd/s3server in this folder).
package s3test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/larder/larder/repo/backend"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Module and Version of the server; .ci/run installs the same.
const (
	Module  = "github.com/versity/versitygw/cmd/versitygw"
	Version = "v1.8.0"
	// Bucket is the bucket Start makes.
	Bucket = "larder"
)

// WriterPolicy is the bucket policy of the writer's credential: the
// three actions an ingest needs, and no other (docs/STORAGE.md gives the
// same for AWS IAM).
const WriterPolicy = `{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "WriterList", "Effect": "Allow", "Principal": {"AWS": ["%[1]s"]},
     "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::%[2]s"},
    {"Sid": "WriterObjects", "Effect": "Allow", "Principal": {"AWS": ["%[1]s"]},
     "Action": ["s3:PutObject", "s3:GetObject"], "Resource": "arn:aws:s3:::%[2]s/*"}
  ]
}`

// Server is a running S3 server.
type Server struct {
	Endpoint string // 127.0.0.1:PORT
	// RootKey/RootSecret are the master's credential (the server's root:
	// everything, delete included); WriterKey/WriterSecret the forum
	// server's.
	RootKey, RootSecret     string
	WriterKey, WriterSecret string

	bin, dir string
	// CAFile, for a server started with StartTLS, holds the PEM
	// certificate of the CA that signed the server's certificate.
	CAFile string
	tls    bool
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

var buildOnce sync.Once
var buildErr error
var builtPath string

// Binary returns the server program: $LARDER_VERSITYGW, else versitygw on
// PATH or in $(go env GOPATH)/bin, else it is built there with go install
// (about a minute, once; .ci/run does it beforehand).
func Binary() (string, error) {
	if p := os.Getenv("LARDER_VERSITYGW"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("s3test: go env GOPATH: %w", err)
	}
	bin := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	buildOnce.Do(func() {
		cmd := exec.Command("go", "install", Module+"@"+Version)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("s3test: building the S3 server (go install %s@%s): %w\n%s", Module, Version, err, out)
			return
		}
		builtPath = bin
	})
	return builtPath, buildErr
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freePort finds a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }() // only its port number was wanted
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a server whose objects and users live in dir, with a bucket
// and the writer's credential and policy.
func Start(dir string) (*Server, error) { return start(dir, false) }

// StartTLS is Start with https: the server's certificate is signed by a
// CA made for it, whose certificate is in CAFile.
func StartTLS(dir string) (*Server, error) { return start(dir, true) }

func start(dir string, useTLS bool) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint: fmt.Sprintf("127.0.0.1:%d", port),
		RootKey:  "root" + randHex(6), RootSecret: randHex(16),
		WriterKey: "writer" + randHex(6), WriterSecret: randHex(16),
		bin: bin, dir: dir, tls: useTLS,
	}
	for _, d := range []string{s.dataDir(), s.iamDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if useTLS {
		if err := s.makeCerts(); err != nil {
			return nil, err
		}
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	if err := s.setup(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) iamDir() string  { return filepath.Join(s.dir, "iam") }

// start runs the server process and waits for it to answer.
func (s *Server) start() error {
	log, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{"--port", s.Endpoint, "--access", s.RootKey, "--secret", s.RootSecret,
		"--iam-dir", s.iamDir(), "--health", "/health", "--quiet"}
	if s.tls {
		args = append(args, "--cert", filepath.Join(s.dir, "server.pem"), "--key", filepath.Join(s.dir, "server.key"))
	}
	cmd := exec.Command(s.bin, append(args, "posix", s.dataDir())...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = log.Close() // nothing ran to write to it
		return fmt.Errorf("s3test: starting %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		// The server ends when stopped or killed on purpose; an exit at
		// start is reported below with its log.
		_ = cmd.Wait()
		_ = log.Close() // written by the server only: nothing buffered here
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	hc, err := s.httpClient()
	if err != nil {
		return err
	}
	for {
		resp, err := hc.Get(s.scheme() + "://" + s.Endpoint + "/health")
		if err == nil {
			_ = resp.Body.Close() // a health check: its body does not matter
			return nil
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			return fmt.Errorf("s3test: the S3 server exited at start: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("s3test: the S3 server did not answer within 20 s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setup makes the writer's user, the bucket (owned by root) and the
// writer's bucket policy.
func (s *Server) setup() error {
	admin := []string{"admin", "--access", s.RootKey, "--secret", s.RootSecret, "--endpoint-url", s.scheme() + "://" + s.Endpoint}
	if s.tls {
		admin = append(admin, "--allow-insecure") // on loopback, to a server this package made
	}
	out, err := exec.Command(s.bin, append(admin, "create-user", "--access", s.WriterKey, "--secret", s.WriterSecret, "--role", "user")...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("s3test: creating the writer's user: %w: %s", err, out)
	}
	c, err := s.client(s.RootKey, s.RootSecret)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := c.MakeBucket(ctx, Bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return fmt.Errorf("s3test: making the bucket: %w", err)
	}
	if err := c.SetBucketPolicy(ctx, Bucket, fmt.Sprintf(WriterPolicy, s.WriterKey, Bucket)); err != nil {
		return fmt.Errorf("s3test: setting the writer's policy: %w", err)
	}
	return nil
}

func (s *Server) client(key, secret string) (*minio.Client, error) {
	hc, err := s.httpClient()
	if err != nil {
		return nil, err
	}
	return minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(key, secret, ""), Region: "us-east-1",
		Secure: s.tls, Transport: hc.Transport})
}

func (s *Server) scheme() string {
	if s.tls {
		return "https"
	}
	return "http"
}

// httpClient trusts the server's CA (for a TLS server).
func (s *Server) httpClient() (*http.Client, error) {
	if !s.tls {
		return &http.Client{Transport: http.DefaultTransport}, nil
	}
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// makeCerts makes a CA and a server certificate for 127.0.0.1 signed by it.
func (s *Server) makeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "larder test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return err
	}
	s.CAFile = filepath.Join(s.dir, "ca.pem")
	files := map[string][]byte{
		s.CAFile:                           pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		filepath.Join(s.dir, "server.pem"): pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		filepath.Join(s.dir, "server.key"): pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Client returns a plain S3 client with the master's (writer false) or the
// writer's credential: tests use it to play the server's users directly.
func (s *Server) Client(writer bool) *minio.Client {
	key, secret := s.RootKey, s.RootSecret
	if writer {
		key, secret = s.WriterKey, s.WriterSecret
	}
	c, err := s.client(key, secret)
	if err != nil {
		panic(err)
	}
	return c
}

// URL is the repository location of prefix in the bucket, as larder's -r
// takes it.
func (s *Server) URL(prefix string) string {
	u := "s3:" + s.scheme() + "://" + s.Endpoint + "/" + Bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u
}

// Config is the backend configuration of prefix, with the writer's or the
// master's credential.
func (s *Server) Config(prefix string, writer bool) backend.S3Config {
	cfg, err := backend.ParseS3URL(s.URL(prefix))
	if err != nil {
		panic(err)
	}
	key, secret := s.RootKey, s.RootSecret
	if writer {
		key, secret = s.WriterKey, s.WriterSecret
	}
	cfg.Credentials = credentials.NewStaticV4(key, secret, "")
	cfg.Region = "us-east-1"
	cfg.CACertFile = s.CAFile
	return cfg
}

// Env returns the environment variables that give larder the master's
// (writer false) or the writer's credential.
func (s *Server) Env(writer bool) []string {
	key, secret := s.RootKey, s.RootSecret
	if writer {
		key, secret = s.WriterKey, s.WriterSecret
	}
	return []string{"AWS_ACCESS_KEY_ID=" + key, "AWS_SECRET_ACCESS_KEY=" + secret, "AWS_DEFAULT_REGION=us-east-1"}
}

// ObjectPath is where the server keeps an object's bytes (tests play the
// storage provider through it).
func (s *Server) ObjectPath(key string) string { return filepath.Join(s.dataDir(), Bucket, key) }

// PID is the server process's ID.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// Fails only when the group is gone already; exited says when it is.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}

// Restart starts a killed or stopped server again on its port, with its
// objects and users.
func (s *Server) Restart() error {
	s.Kill()
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s).
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// Fails only when the group is gone already; exited says when it is.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		s.Kill()
	}
}

// New starts a server for a test, in a temporary folder, stopped when the
// test ends. A test that needs it fails (never skips) when the server
// cannot run.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
