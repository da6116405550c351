package pgserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Database is the application database Start creates.
const Database = "prismflow"

// superuser is the role initdb creates and the DSN connects as.
const superuser = "prismflow"

// Config says where and how to run the server.
type Config struct {
	// Dir holds the cluster and its password (see the package doc). It is
	// created if missing. Required.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one at each start.
	Port int
	// Log receives PostgreSQL's own log lines (at debug level) and
	// lifecycle messages; nil means slog.Default().
	Log *slog.Logger
	// StartTimeout bounds how long Start waits for the server to accept
	// connections; 0 means 60s.
	StartTimeout time.Duration
}

// Server is a running private PostgreSQL.
type Server struct {
	dsn  string
	log  *slog.Logger
	cmd  *exec.Cmd
	done chan struct{} // closed when postgres has exited
	err  error         // postgres' exit status, valid after done

	stderr *tailBuffer
	stop   sync.Once
}

// DSN returns the URL to connect to the application database.
func (s *Server) DSN() string { return s.dsn }

// Start runs initdb on first use of cfg.Dir, starts postgres and returns
// once the application database accepts connections.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("pgserver: Config.Dir is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	owner, err := runAs()
	if err != nil {
		return nil, err
	}
	if err := prepareDir(dir, owner); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	password, err := ensureCluster(ctx, cfg.Log, bins, dir, data, owner)
	if err != nil {
		return nil, err
	}
	if err := clearStalePID(ctx, data); err != nil {
		return nil, err
	}

	port := cfg.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			return nil, fmt.Errorf("pgserver: pick a port: %w", err)
		}
	}
	s := &Server{
		log:    cfg.Log.With("component", "pgserver", "port", port),
		done:   make(chan struct{}),
		stderr: &tailBuffer{max: 40},
	}
	s.stderr.log = s.log
	if err := s.spawn(bins.postgres, data, port, owner); err != nil {
		return nil, err
	}
	s.dsn = (&url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + Database,
		RawQuery: "sslmode=disable",
	}).String()
	admin := (&url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}).String()
	if err := s.waitReady(ctx, admin); err != nil {
		s.Stop(context.Background())
		return nil, err
	}
	if err := createDatabase(ctx, admin, Database); err != nil {
		s.Stop(context.Background())
		return nil, err
	}
	s.log.Info("private PostgreSQL ready", "dir", dir, "version", bins.version)
	return s, nil
}

// binaries are the PostgreSQL programs Start needs.
type binaries struct {
	initdb, postgres string
	version          string
}

// findBinaries prefers initdb/postgres from PATH (an explicit choice of
// the operator) and otherwise the newest /usr/lib/postgresql/N/bin, where
// Debian and Ubuntu put them without linking them onto PATH.
func findBinaries() (binaries, error) {
	if i, err := exec.LookPath("initdb"); err == nil {
		if p, err := exec.LookPath("postgres"); err == nil {
			return binaries{initdb: i, postgres: p, version: "PATH"}, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	versionOf := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return int(versionOf(b)*100 - versionOf(a)*100) })
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExecutable(i) && isExecutable(p) {
			return binaries{initdb: i, postgres: p, version: filepath.Base(filepath.Dir(d))}, nil
		}
	}
	return binaries{}, errors.New("pgserver: initdb and postgres not found on PATH or under /usr/lib/postgresql/*/bin: install the Debian package postgresql (or configure a DSN)")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// owner is the OS user PostgreSQL runs as; nil cred means ourselves.
type owner struct {
	name string
	cred *syscall.Credential
}

func (o owner) attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: o.cred}
}

// runAs picks the user PostgreSQL runs as: ourselves, or an unprivileged
// user when we are root, because postgres refuses to run as root.
func runAs() (owner, error) {
	if os.Geteuid() != 0 {
		return owner{name: strconv.Itoa(os.Geteuid())}, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return owner{name: name, cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}}, nil
	}
	return owner{}, errors.New("pgserver: running as root and neither user postgres nor nobody exists to run PostgreSQL as")
}

// prepareDir creates dir and, when PostgreSQL runs as another user, hands
// it over and checks that the user can reach it at all.
func prepareDir(dir string, o owner) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pgserver: create %s: %w", dir, err)
	}
	if o.cred == nil {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
		if !traversable(st, o.cred) {
			return fmt.Errorf("pgserver: PostgreSQL runs as user %s (uid %d), which cannot traverse %s (mode %v): "+
				"make it traversable (chmod o+x %s) or put the data directory elsewhere", o.name, o.cred.Uid, p, st.Mode().Perm(), p)
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid == o.cred.Uid {
		return nil // handed over before; postgres owns what it created
	}
	// Hand over the whole tree: a directory created by an earlier run as
	// another user must become usable too.
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, int(o.cred.Uid), int(o.cred.Gid)); err != nil {
			return fmt.Errorf("pgserver: chown %s to %s: %w", p, o.name, err)
		}
		return nil
	})
}

func traversable(st fs.FileInfo, c *syscall.Credential) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := st.Mode().Perm()
	switch {
	case sys.Uid == c.Uid:
		return perm&0o100 != 0
	case sys.Gid == c.Gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// ensureCluster runs initdb unless the cluster exists, and returns the
// superuser password.
func ensureCluster(ctx context.Context, log *slog.Logger, bins binaries, dir, data string, o owner) (string, error) {
	pwFile := filepath.Join(dir, "password")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		pw, err := os.ReadFile(pwFile)
		if err != nil {
			return "", fmt.Errorf("pgserver: existing cluster in %s but no password: %w", data, err)
		}
		return strings.TrimSpace(string(pw)), nil
	}
	// A data directory without PG_VERSION is an initdb that did not
	// finish; initdb refuses a non-empty directory, so start over.
	if err := os.RemoveAll(data); err != nil {
		return "", fmt.Errorf("pgserver: remove incomplete cluster: %w", err)
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("pgserver: generate password: %w", err)
	}
	password := hex.EncodeToString(buf)
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("pgserver: write password: %w", err)
	}
	if o.cred != nil {
		if err := os.Chown(pwFile, int(o.cred.Uid), int(o.cred.Gid)); err != nil {
			return "", fmt.Errorf("pgserver: chown password: %w", err)
		}
	}
	log.Info("creating PostgreSQL cluster", "dir", data)
	cmd := exec.CommandContext(ctx, bins.initdb,
		"--pgdata="+data,
		"--username="+superuser,
		"--pwfile="+pwFile,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C.UTF-8", // stable sorting, independent of the host's locale
	)
	cmd.SysProcAttr = o.attr()
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("pgserver: initdb: %w\n%s", err, out)
	}
	return password, nil
}

// clearStalePID removes a postmaster.pid whose process is gone or is no
// postgres (a PID reused after a crash, common in containers), and waits
// for an old postmaster on the same directory that is still exiting.
func clearStalePID(ctx context.Context, data string) error {
	pidFile := filepath.Join(data, "postmaster.pid")
	for {
		b, err := os.ReadFile(pidFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(first))
		if err != nil || pid <= 0 || !isPostgres(pid) {
			if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("pgserver: remove stale %s: %w", pidFile, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgserver: %s is in use by running postgres pid %d", data, pid)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func isPostgres(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return false
	}
	return strings.HasPrefix(strings.TrimSpace(string(comm)), "postgres")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// maxSocketDir keeps the unix socket path under the kernel's 108-byte
// limit ("/.s.PGSQL.65535" is 16 bytes).
const maxSocketDir = 107 - 16

// spawn starts postgres as a child with a parent-death signal.
func (s *Server) spawn(bin, data string, port int, o owner) error {
	sockets := data
	if len(sockets) > maxSocketDir {
		s.log.Warn("data directory path too long for a unix socket; listening on TCP only", "dir", data)
		sockets = ""
	}
	cmd := exec.Command(bin,
		"-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+sockets,
		"-c", "logging_collector=off",
	)
	cmd.Dir = data
	cmd.Stdout = s.stderr
	cmd.Stderr = s.stderr
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = o.attr()
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	s.cmd = cmd

	// The parent-death signal fires when the OS thread that forked the
	// child exits, not the process. Fork from a locked thread that stays
	// alive, blocked in Wait, for as long as postgres runs.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with this goroutine, after
		// postgres is gone.
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.done)
			return
		}
		started <- nil
		s.err = cmd.Wait()
		close(s.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgserver: start postgres: %w", err)
	}
	return nil
}

// waitReady polls until postgres accepts connections, it exits, or ctx
// ends.
func (s *Server) waitReady(ctx context.Context, dsn string) error {
	var last error
	for {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		last = err
		select {
		case <-s.done:
			return fmt.Errorf("pgserver: postgres exited during start (%v):\n%s", s.err, s.stderr.String())
		case <-ctx.Done():
			return fmt.Errorf("pgserver: postgres not ready: %w (last error: %v)\n%s", ctx.Err(), last, s.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func createDatabase(ctx context.Context, adminDSN, name string) error {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return fmt.Errorf("pgserver: connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("pgserver: look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgserver: create database %s: %w", name, err)
	}
	return nil
}

// Stop shuts postgres down with a fast shutdown (open transactions are
// rolled back, committed data is safe) and waits for it to exit. If ctx
// ends first, postgres is sent SIGQUIT (immediate shutdown, recovered at
// next start). Stop is safe to call more than once.
func (s *Server) Stop(ctx context.Context) error {
	var err error
	s.stop.Do(func() {
		select {
		case <-s.done:
		default:
			if e := s.cmd.Process.Signal(syscall.SIGINT); e != nil && !errors.Is(e, os.ErrProcessDone) {
				err = fmt.Errorf("pgserver: signal postgres: %w", e)
				return
			}
			select {
			case <-s.done:
			case <-ctx.Done():
				s.cmd.Process.Signal(syscall.SIGQUIT)
				<-s.done
				err = fmt.Errorf("pgserver: stop: %w; sent immediate shutdown", ctx.Err())
				return
			}
		}
		s.log.Info("private PostgreSQL stopped")
	})
	return err
}

// Done is closed when postgres has exited, whether by Stop or not.
func (s *Server) Done() <-chan struct{} { return s.done }

// tailBuffer forwards postgres' output to the log line by line and keeps
// the last lines for error messages.
type tailBuffer struct {
	log *slog.Logger
	max int

	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := string(t.partial[:i])
		t.partial = t.partial[i+1:]
		t.log.Debug(line, "source", "postgres")
		t.lines = append(t.lines, line)
		if len(t.lines) > t.max {
			t.lines = t.lines[1:]
		}
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

var _ io.Writer = (*tailBuffer)(nil)

// Running returns the DSN of the private PostgreSQL that another process
// (prismflow run) started on dir, and false if none runs there. The
// command-line tools use it to reach the embedded database.
func Running(dir string) (string, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("pgserver: %w", err)
	}
	// postmaster.pid: pid, data directory, start time, port, ...
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return "", false, nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || !isPostgres(pid) {
		return "", false, nil
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	if err != nil {
		return "", false, fmt.Errorf("pgserver: no port in postmaster.pid: %w", err)
	}
	pw, err := os.ReadFile(filepath.Join(dir, "password"))
	if err != nil {
		return "", false, fmt.Errorf("pgserver: %w", err)
	}
	return (&url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, strings.TrimSpace(string(pw))),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + Database,
		RawQuery: "sslmode=disable",
	}).String(), true, nil
}
