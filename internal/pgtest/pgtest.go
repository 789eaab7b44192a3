// Package pgtest runs a real PostgreSQL server from the system's packages
// (Debian's postgresql) on a free loopback port for tests, and hands out a
// fresh database per test.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
)

// RequireEnv, when set, makes a missing PostgreSQL a test failure instead
// of a skip.
const RequireEnv = "HALLRATE_REQUIRE_POSTGRES"

// Server is a PostgreSQL server owned by a test binary.
type Server struct {
	dir  string
	port int
	bin  string
	next atomic.Int64
}

// binDir finds the newest /usr/lib/postgresql/*/bin with initdb.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return "", errors.New("postgresql not installed (apt-get install postgresql)")
	}
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[j]))))
		return vi < vj
	})
	return filepath.Dir(dirs[len(dirs)-1]), nil
}

// Start initialises a cluster in a temporary directory and starts it on a
// free loopback port. Run as root, the server runs as the postgres user
// (PostgreSQL refuses root). Stop it with [Server.Stop].
func Start() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hallrate-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, bin: bin}
	if err := s.start(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) start() error {
	data := filepath.Join(s.dir, "data")
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("pgtest: running as root needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	if err := s.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("pgtest: free port: %w", err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	return s.serve()
}

// serve starts the server of an initialised cluster on its port.
func (s *Server) serve() error {
	data := filepath.Join(s.dir, "data")
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", s.port, s.dir)
	if err := s.run("pg_ctl", "-D", data, "-l", filepath.Join(s.dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("%w\n%s", err, log)
	}
	return nil
}

// run runs a PostgreSQL program, as the postgres user when root.
func (s *Server) run(prog string, args ...string) error {
	path := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s: %w: %s", prog, err, out)
	}
	return nil
}

// DSN returns the URL of database name.
func (s *Server) DSN(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// NewDatabase creates an empty database and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), s.next.Add(1))
	db, err := sql.Open("pgx", s.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.DSN(name)
}

// Crash stops the server the way a power cut would (pg_ctl stop -m
// immediate: no shutdown checkpoint, crash recovery at the next start) and
// keeps its files; [Server.Restart] starts it again on the same port.
func (s *Server) Crash() error {
	return s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
}

// Restart starts a server stopped by [Server.Crash] on its port.
func (s *Server) Restart() error { return s.serve() }

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	if s.port != 0 {
		_ = s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
	}
	os.RemoveAll(s.dir)
}

// Main is for TestMain: it starts a server when PostgreSQL is installed
// and returns it (nil otherwise, or when it would not start, with why),
// and a function that stops it.
func Main() (*Server, func(), error) {
	s, err := Start()
	if err != nil {
		return nil, func() {}, err
	}
	return s, s.Stop, nil
}

// Shared is the server a test binary starts once, in TestMain, for all its
// tests: `var pg pgtest.Shared` and `os.Exit(pg.Run(m))`.
type Shared struct {
	srv *Server
	err error
}

// Run starts the server, runs the tests and stops the server, returning
// the tests' exit code. A server that cannot start is remembered, so each
// test that needs it skips or fails through [Shared.Need].
func (sh *Shared) Run(m *testing.M) int {
	srv, stop, err := Main()
	sh.srv, sh.err = srv, err
	defer stop()
	return m.Run()
}

// Need returns the shared server for t, as [Need] does.
func (sh *Shared) Need(t testing.TB) *Server { t.Helper(); return Need(t, sh.srv, sh.err) }

// Need returns s, or skips the test when s is nil (fails it when
// HALLRATE_REQUIRE_POSTGRES is set).
func Need(t testing.TB, s *Server, why error) *Server {
	t.Helper()
	if s != nil {
		return s
	}
	msg := "postgresql not available"
	if why != nil {
		msg = strings.TrimSpace(why.Error())
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is set but: %s", RequireEnv, msg)
	}
	t.Skip(msg)
	return nil
}
