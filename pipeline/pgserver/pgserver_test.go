package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testDir returns a fresh directory that PostgreSQL's user can reach even
// when the test runs as root (t.TempDir's parents are 0700).
func testDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for p := dir; p != os.TempDir() && p != filepath.Dir(p); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "pg")
}

func startServer(t *testing.T, dir string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

func TestStartStopRestartKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := testDir(t)

	if _, ok, err := Running(dir); ok || err != nil {
		t.Fatalf("Running before start = %v, %v; want false", ok, err)
	}
	s := startServer(t, dir)
	if dsn, ok, err := Running(dir); !ok || err != nil || dsn != s.DSN() {
		t.Fatalf("Running while started = %q, %v, %v; want the server's DSN", dsn, ok, err)
	}
	if !strings.Contains(s.DSN(), "127.0.0.1") || !strings.HasSuffix(strings.Split(s.DSN(), "?")[0], "/"+Database) {
		t.Fatalf("DSN %q: want loopback and database %s", s.DSN(), Database)
	}
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives restart')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Stop returned before postgres exited")
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("postmaster.pid after clean stop: %v", err)
	}
	if _, ok, _ := Running(dir); ok {
		t.Fatal("Running after stop = true")
	}

	s2 := startServer(t, dir)
	conn, err = pgx.Connect(ctx, s2.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, `SELECT v FROM kept`).Scan(&v); err != nil {
		t.Fatalf("data after restart: %v", err)
	}
	if v != "survives restart" {
		t.Fatalf("got %q", v)
	}
	// Only loopback: the server must not listen on all interfaces.
	var listen string
	if err := conn.QueryRow(ctx, `SHOW listen_addresses`).Scan(&listen); err != nil {
		t.Fatal(err)
	}
	if listen != "127.0.0.1" {
		t.Fatalf("listen_addresses = %q", listen)
	}
}

func TestPasswordRequired(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, testDir(t))
	cfg, err := pgx.ParseConfig(s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = "wrong"
	if conn, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		conn.Close(ctx)
		t.Fatal("connected with a wrong password")
	}
}

func TestStalePIDFileDoesNotBlockStart(t *testing.T) {
	ctx := context.Background()
	dir := testDir(t)
	s := startServer(t, dir)
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// What a crash in a container leaves behind: a lock file whose PID now
	// belongs to some other live process.
	other := exec.Command("sleep", "300")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	pid := filepath.Join(dir, "data", "postmaster.pid")
	stale := fmt.Sprintf("%d\n%s\n1700000000\n5432\n\n\n", other.Process.Pid, filepath.Join(dir, "data"))
	if err := os.WriteFile(pid, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, dir)
	conn, err := pgx.Connect(ctx, s2.DSN())
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
}

func TestUntraversableParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the data directory to another user")
	}
	dir := t.TempDir() // 0700, owned by root
	_, err := Start(context.Background(), Config{Dir: filepath.Join(dir, "pg")})
	if err == nil || !strings.Contains(err.Error(), "cannot traverse") {
		t.Fatalf("Start under a 0700 root directory: err = %v, want a traversal explanation", err)
	}
}
