// Package mariadbtest runs a real MariaDB server from the system's packages
// (Debian's mariadb-server) for a test: in a temporary data directory, on a
// free loopback port, as the mysql user when the test runs as root.
package mariadbtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // driver "mysql"
)

// RequireEnv, when set, makes a missing MariaDB a test failure instead of
// a skip.
const RequireEnv = "HALLRATE_REQUIRE_MARIADB"

// Server is a running MariaDB server.
type Server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

// Write keeps the server's output for a failing test.
func (s *Server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.Write(p)
}

// Log returns what the server printed.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Start starts a server for t, which stops it and removes its files when
// it ends. Without MariaDB installed the test is skipped (failed when
// HALLRATE_REQUIRE_MARIADB is set).
func Start(t testing.TB) *Server {
	t.Helper()
	install, err1 := exec.LookPath("mariadb-install-db")
	server, err2 := exec.LookPath("mariadbd")
	if err := errors.Join(err1, err2); err != nil {
		msg := "mariadb not installed (apt-get install mariadb-server): " + err.Error()
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("%s is set but %s", RequireEnv, msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "hallrate-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{dir: dir, done: make(chan struct{})}
	var prefix []string
	if os.Geteuid() == 0 {
		// mariadbd refuses to run as root.
		u, err := user.Lookup("mysql")
		if err != nil {
			t.Fatalf("mariadbtest: running as root needs the mysql user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		prefix = []string{"runuser", "-u", "mysql", "--"}
	}
	data := filepath.Join(dir, "data")
	args := append(append([]string{}, prefix...), install, "--no-defaults", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("mariadbtest: mariadb-install-db: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	args = append(append([]string{}, prefix...), server, "--no-defaults", "--datadir="+data,
		"--port="+strconv.Itoa(s.port), "--bind-address=127.0.0.1", "--socket="+filepath.Join(dir, "sock"),
		"--pid-file="+filepath.Join(dir, "pid"), "--skip-grant-tables", "--skip-log-bin",
		"--innodb-buffer-pool-size=16M", "--skip-name-resolve")
	s.cmd = exec.Command(args[0], args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("mariadbtest: start mariadbd: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	s.waitReady(t)
	return s
}

// waitReady waits until the server answers a query, with a deadline.
func (s *Server) waitReady(t testing.TB) {
	t.Helper()
	db, err := sql.Open("mysql", s.DSN("mysql"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("mariadbtest: mariadbd exited before answering:\n%s", s.Log())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mariadbtest: mariadbd did not answer within 60s: %v\n%s", err, s.Log())
		}
	}
}

// stop ends the server it started, by its pid, and waits for it.
func (s *Server) stop() {
	if s.cmd.Process != nil {
		// runuser passes SIGTERM on to mariadbd, which shuts down cleanly.
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// DSN returns the go-sql-driver/mysql DSN of database name, with
// timestamps read as Asia/Shanghai times.
func (s *Server) DSN(name string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s?parseTime=true&loc=Asia%%2FShanghai", s.port, name)
}

// NewDatabase creates an empty database and returns its DSN.
func (s *Server) NewDatabase(t testing.TB, name string) string {
	t.Helper()
	db, err := sql.Open("mysql", s.DSN("mysql"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("mariadbtest: create database: %v", err)
	}
	return s.DSN(name)
}
